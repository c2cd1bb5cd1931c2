"""`Stream`: what an agent iterates over. One per agent instance, i.e. per shard.

Agents are async generators, but luxflow does not run them on an event loop: the engine
drives each agent's coroutine by hand, record by record (see `streams.agent`). When the
stream's buffer is empty, `__anext__` suspends with the `WAITING` marker and the engine
resumes it after pushing the next value. That keeps the per-record cost at a few hundred
nanoseconds instead of the tens of microseconds of task switching and queues.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator
from typing import Any, Final, Generic, TypeVar

from core.event import Event

T = TypeVar("T")


class _Waiting:
    __slots__ = ()

    def __repr__(self) -> str:
        return "WAITING"


WAITING: Final = _Waiting()
"""Yielded through the agent's coroutine when its stream has no value ready."""


class _Wait:
    """An awaitable that hands control back to the engine until a value (or a tick) arrives."""

    __slots__ = ()

    def __await__(self) -> Generator[_Waiting, None, None]:
        yield WAITING


_WAIT: Final = _Wait()


class Stream(Generic[T]):
    """The values of one shard, in order, as an async iterator.

    Contract: an agent may await only its stream (`async for`, `take`). The stream ends
    (the `async for` loop exits) when the shard ends or the worker shuts down; code after
    the loop runs then, so an agent can emit what it still holds.

    `current_event` (Faust's name) is the context of the value the agent has just received:
    shard id, sequence number, partition key, arrival time and the decoded value
    (`core.event.Event`). The engine sets it with the value, before the agent resumes; it
    stays until the next value (so code after a `take()` batch sees the batch's last event).
    None before the first value.
    """

    __slots__ = ("_buffer", "_closed", "current_event", "now_ms")

    def __init__(self) -> None:
        self._buffer: deque[T] = deque()
        self._closed = False
        self.now_ms = 0
        self.current_event: Event[Any] | None = None

    def push(self, value: T, event: Event[Any] | None = None) -> None:
        """Queue `value`; `event` (its context) becomes `current_event`."""
        self._buffer.append(value)
        if event is not None:
            self.current_event = event

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        buffer = self._buffer
        while not buffer:
            if self._closed:
                raise StopAsyncIteration
            await _WAIT
        return buffer.popleft()

    async def take(self, max_: int, within_ms: int) -> AsyncIterator[list[T]]:
        """Yield lists of up to `max_` values; a shorter list once `within_ms` has passed
        (processing time, as told by the engine's ticks) since the list's first value."""
        if max_ < 1 or within_ms < 0:
            raise ValueError("take() needs max_ >= 1 and within_ms >= 0")
        buffer = self._buffer
        batch: list[T] = []
        deadline_ms = 0
        while True:
            if buffer:
                if not batch:
                    deadline_ms = self.now_ms + within_ms
                batch.append(buffer.popleft())
                if len(batch) >= max_:
                    yield batch
                    batch = []
                continue
            if batch and (self._closed or self.now_ms >= deadline_ms):
                yield batch
                batch = []
                continue
            if self._closed:
                return
            await _WAIT
