"""InMemorySink keeps the Sink contract: buffer, flush to stored, discard, failed flush keeps."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from core.errors import SinkError
from sinks.memory import InMemorySink


def test_flush_moves_buffer_to_stored_and_later_writes_win() -> None:
    sink = InMemorySink()
    sink.write("a")
    sink.write("b")
    assert sink.stored == {} and sink.buffered == 2
    sink.flush()
    assert sink.values() == ["a", "b"] and sink.buffered == 0


def test_select_and_key() -> None:
    def select(item: object) -> Iterable[object]:
        return [item, item] if isinstance(item, tuple) else []

    sink = InMemorySink(select=select, key=lambda out: out[0])  # type: ignore[index]
    sink.write(("k", 1))
    sink.write(("k", 2))
    sink.write("ignored")
    sink.flush()
    assert sink.stored == {"k": ("k", 2)}


def test_discard_drops_only_the_buffer() -> None:
    sink = InMemorySink()
    sink.write("kept")
    sink.flush()
    sink.write("dropped")
    sink.discard()
    sink.flush()
    assert sink.values() == ["kept"]


def test_a_failed_flush_keeps_the_buffer() -> None:
    sink = InMemorySink()
    sink.write("x")
    sink.fail_flushes = 1
    with pytest.raises(SinkError):
        sink.flush()
    assert sink.stored == {} and sink.buffered == 1
    sink.flush()
    assert sink.values() == ["x"]
