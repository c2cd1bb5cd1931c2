"""Agents driven by hand: outputs in order, take() batching, restart after an error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.errors import AgentError
from streams.agent import Agent
from streams.stream import Stream


async def doubler(stream: Stream[int]) -> AsyncIterator[object]:
    async for value in stream:
        yield value * 2
        if value % 3 == 0:
            yield ("three", value)


def test_outputs_in_order_per_value() -> None:
    instance = Agent("doubler", doubler).instance()
    out: list[object] = []
    for value in (1, 2, 3):
        instance.feed(value, out)
    assert out == [2, 4, 6, ("three", 3)]


def test_code_after_the_loop_runs_when_the_stream_closes() -> None:
    async def counter(stream: Stream[int]) -> AsyncIterator[object]:
        total = 0
        async for value in stream:
            total += value
        yield ("total", total)

    instance = Agent("counter", counter).instance()
    out: list[object] = []
    for value in (5, 6, 7):
        instance.feed(value, out)
    assert out == []
    instance.close(out)
    assert out == [("total", 18)]
    assert instance.done


def test_take_yields_full_batches_and_a_partial_one_after_the_deadline() -> None:
    async def batcher(stream: Stream[int]) -> AsyncIterator[object]:
        async for batch in stream.take(3, within_ms=1_000):
            yield tuple(batch)

    instance = Agent("batcher", batcher).instance()
    out: list[object] = []
    instance.tick(0, out)
    for value in range(1, 6):
        instance.feed(value, out)
    assert out == [(1, 2, 3)]
    instance.tick(999, out)  # value 4 arrived at t=0: its deadline is t=1000
    assert out == [(1, 2, 3)]
    instance.tick(1_000, out)
    assert out == [(1, 2, 3), (4, 5)]


def test_take_flushes_the_partial_batch_when_the_stream_ends() -> None:
    async def batcher(stream: Stream[int]) -> AsyncIterator[object]:
        async for batch in stream.take(10, within_ms=60_000):
            yield tuple(batch)

    instance = Agent("batcher", batcher).instance()
    out: list[object] = []
    instance.feed(1, out)
    instance.feed(2, out)
    instance.close(out)
    assert out == [(1, 2)]


def test_an_agent_that_raises_is_restarted_and_keeps_consuming() -> None:
    async def fragile(stream: Stream[int]) -> AsyncIterator[object]:
        async for value in stream:
            if value < 0:
                raise RuntimeError("negative")
            yield value

    instance = Agent("fragile", fragile).instance()
    out: list[object] = []
    instance.feed(1, out)
    with pytest.raises(AgentError, match="negative"):
        instance.feed(-1, out)
    instance.feed(2, out)
    assert out == [1, 2]


def test_an_agent_that_awaits_something_else_is_refused() -> None:
    class Foreign:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield "something"

    async def impatient(stream: Stream[int]) -> AsyncIterator[object]:
        async for value in stream:
            await Foreign()
            yield value

    instance = Agent("impatient", impatient).instance()
    with pytest.raises(AgentError, match="may only await its stream"):
        instance.feed(1, [])


def test_take_rejects_a_nonsense_size() -> None:
    async def bad(stream: Stream[int]) -> AsyncIterator[object]:
        async for batch in stream.take(0, within_ms=10):
            yield batch

    instance = Agent("bad", bad).instance()
    with pytest.raises(AgentError, match="max_ >= 1"):
        instance.feed(1, [])
