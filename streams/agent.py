"""Agents: `@app.agent` async generators, one running instance per shard.

The engine drives an agent's coroutine by hand (no event loop): it pushes a value into the
instance's `Stream` and resumes the coroutine until the agent waits for the next value. Every
value the agent yields on the way is an output, routed by the engine to the sinks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

from core.errors import AgentError
from core.event import Event
from streams.stream import WAITING, Stream

T = TypeVar("T")

AgentFun = Callable[[Stream[T]], AsyncIterator[object]]
"""An agent: `async def agent(stream): async for value in stream: ... yield output`."""


class AgentInstance(Generic[T]):
    """One agent running over one shard's stream.

    Contract: `feed`, `tick` and `close` return only when the agent waits for its next value
    (or has finished); the outputs produced meanwhile are appended to `out`, in order. If the
    agent raises, `AgentError` is raised from the exception and the instance is restarted on
    the same stream, so one bad value cannot stop the shard.
    """

    __slots__ = ("_agen", "_fun", "_pending", "done", "name", "stream")

    def __init__(self, name: str, fun: AgentFun[T]) -> None:
        self.name = name
        self._fun = fun
        self.stream: Stream[T] = Stream()
        self._agen = fun(self.stream)
        self._pending: Coroutine[Any, None, object] | None = None
        self.done = False

    def feed(self, value: T, out: list[object], event: Event[Any] | None = None) -> None:
        """Give the agent `value`; `event` becomes its `stream.current_event`."""
        self.stream.push(value, event)
        self._run(out)

    def tick(self, now_ms: int, out: list[object]) -> None:
        self.stream.now_ms = now_ms
        self._run(out)

    def close(self, out: list[object]) -> None:
        """End the stream and let the agent finish (its code after `async for` runs)."""
        self.stream.close()
        self._run(out)

    def _run(self, out: list[object]) -> None:
        while not self.done:
            pending = self._pending
            if pending is None:
                pending = self._pending = cast(Coroutine[Any, None, object], self._agen.__anext__())
            try:
                marker = pending.send(None)
            except StopIteration as yielded:
                self._pending = None
                out.append(yielded.value)
                continue
            except StopAsyncIteration:
                self._pending = None
                self.done = True
                return
            except Exception as exc:
                self._restart()
                raise AgentError(f"agent {self.name!r} raised {exc!r}") from exc
            if marker is not WAITING:
                pending.close()
                self._restart()
                raise AgentError(
                    f"agent {self.name!r} awaited {marker!r}: an agent may only await its stream"
                )
            return

    def _restart(self) -> None:
        self._pending = None
        self._agen = self._fun(self.stream)


class Agent(Generic[T]):
    """An agent definition: a name and its function. `instance()` starts it over a new stream.

    `streams.testing.AgentTestContext(app)` runs an app's agents over one in-memory shard."""

    def __init__(self, name: str, fun: AgentFun[T]) -> None:
        self.name = name
        self.fun = fun

    def instance(self) -> AgentInstance[T]:
        return AgentInstance(self.name, self.fun)

    def __repr__(self) -> str:
        return f"Agent({self.name!r})"
