"""RoutedSink: each point to the part its route names, flushes in order, counters summed."""

from __future__ import annotations

import pytest

from core.errors import SinkError
from sinks.base import SinkCounters
from sinks.routed import RoutedSink


class Part:
    def __init__(self, fail: bool = False) -> None:
        self.counters = SinkCounters()
        self.buffer: list[object] = []
        self.stored: list[object] = []
        self.fail = fail

    def write(self, item: object) -> None:
        self.buffer.append(item)

    def flush(self) -> None:
        if self.fail:
            raise SinkError("down")
        self.stored += self.buffer
        self.counters.items_written += len(self.buffer)
        self.buffer.clear()

    def discard(self) -> None:
        self.buffer.clear()


def split(item: object) -> list[tuple[str, int]]:
    return [("a", 1), ("b", 2), ("a", 3)] if item == "x" else []


def test_points_go_to_their_part_and_counters_are_summed() -> None:
    a, b = Part(), Part()
    sink = RoutedSink(split, lambda point: point[0], {"a": a, "b": b})
    sink.write("x")
    sink.write("nothing")
    sink.flush()
    assert (a.stored, b.stored) == ([("a", 1), ("a", 3)], [("b", 2)])
    assert sink.counters.items_written == 3


def test_a_failed_part_keeps_its_buffer_and_the_next_flush_writes_it() -> None:
    a, b = Part(), Part(fail=True)
    sink = RoutedSink(split, lambda point: point[0], {"a": a, "b": b})
    sink.write("x")
    with pytest.raises(SinkError):
        sink.flush()
    assert a.stored == [("a", 1), ("a", 3)]
    assert b.buffer == [("b", 2)]
    b.fail = False
    sink.flush()
    assert b.stored == [("b", 2)]


def test_an_unknown_route_is_a_programming_error_and_discard_empties_every_part() -> None:
    a = Part()
    sink = RoutedSink(split, lambda point: point[0], {"a": a})
    with pytest.raises(KeyError):
        sink.write("x")
    sink.discard()
    assert a.buffer == []
