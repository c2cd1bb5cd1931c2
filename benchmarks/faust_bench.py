"""faust-streaming beside luxflow, on the same work, fed without Kafka.

Two figures, both through `agent.test_context()` (faust's broker-less harness, its documented
way to run an agent without Kafka):

- same work (`run_same_work`): the faust agent runs the real lighting agent's function
  (the `detect` agent's `fun`, the very code luxflow runs, with the same domain calls
  and window updates on the same tables) over readings decoded with the app's decoder; its
  outputs go to the same production sinks (`lighting.wiring.shard_sinks` over the null
  clients); windows close and the app's advance callbacks run after every `batch` records,
  and the engine checkpoints (flush, snapshot) every `checkpoint_every` records, as luxflow's
  own pipeline does (`benchmarks.same_work`). So only the framework differs.
- framework overhead (`noop_us_per_event`): a no-op agent; CPU per event is faust's own
  cost (message, event, channel, stream iteration).

faust-streaming is only in the `bench` extra: when it is missing or fails, the result says
why instead of raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from benchmarks.harness import RequestCounters
from benchmarks.same_work import RunResult, SameWork
from core.event import Event
from core.records import Record
from streams.app import App

FaustResult = RunResult


Drive = Callable[[Any], Any]
"""Given the faust module, a coroutine returning (events seen, CPU seconds)."""


def _run(expected: int, drive: Drive) -> FaustResult:
    try:
        import faust
    except Exception as exc:  # ImportError, or a faust that does not import on this Python
        return FaustResult(0, 0.0, None, f"faust-streaming not importable: {exc!r}")
    version = str(getattr(faust, "__version__", "?"))
    try:
        # faust logs through `mode`; keep its chatter off the benchmark's output.
        logging.getLogger("faust").setLevel(logging.WARNING)
        logging.getLogger("mode").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            events, cpu_s = asyncio.run(drive(faust))
    except Exception as exc:
        return FaustResult(0, 0.0, version, f"faust-streaming failed: {exc!r}")
    if events != expected:
        return FaustResult(events, cpu_s, version, f"faust agent saw {events} of {expected}")
    return FaustResult(events, cpu_s, version, None)


def _faust_app(faust: Any) -> tuple[Any, Any]:
    app = faust.App(
        "luxflow-bench",
        broker="kafka://127.0.0.1:9",  # never contacted: test_context() has no broker
        web_enabled=False,
        autodiscover=False,
    )
    return app, app.topic("telemetry", value_type=bytes, value_serializer="raw")


async def _put_all(agent: Any, payloads: Sequence[bytes]) -> float:
    async with agent.test_context() as running:
        cpu0 = time.process_time()
        for data in payloads:
            await running.put(data)
        return time.process_time() - cpu0


def noop_us_per_event(payloads: Sequence[bytes]) -> FaustResult:
    """A faust agent that does nothing with its events."""

    async def drive(faust: Any) -> tuple[int, float]:
        app, topic = _faust_app(faust)
        seen = [0]

        async def noop(stream: AsyncIterator[bytes]) -> None:
            async for _data in stream:
                seen[0] += 1

        cpu_s = await _put_all(app.agent(topic, name="noop")(noop), payloads)
        return seen[0], cpu_s

    return _run(len(payloads), drive)


class _Readings:
    """The values faust's stream carries, as the agent's stream: an async iterator with the
    `current_event` the lighting agent reads (luxflow's event of the current record)."""

    def __init__(self, values: AsyncIterator[object], work: SameWork) -> None:
        self._values = values
        self._work = work

    @property
    def current_event(self) -> Event[Any] | None:
        return self._work.event

    def __aiter__(self) -> AsyncIterator[object]:
        return self

    def __anext__(self) -> Awaitable[object]:
        return self._values.__anext__()


def run_same_work(
    build_app: Callable[[], App],
    records: Sequence[Record],
    *,
    batch: int = 500,
    checkpoint_every: int = 5_000,
    counters: RequestCounters | None = None,
) -> FaustResult:
    """The real lighting agent inside a faust agent, with luxflow's tables and sinks.
    `counters` receives every request the sinks send."""
    work = SameWork(build_app, records, counters, batch=batch, checkpoint_every=checkpoint_every)
    detect = work.detect
    outputs: list[object] = []

    async def drive(faust: Any) -> tuple[int, float]:
        app, topic = _faust_app(faust)
        seen = [0]

        async def values(stream: AsyncIterator[bytes]) -> AsyncIterator[object]:
            async for _data in stream:
                index = seen[0]
                seen[0] += 1
                yield work.begin(index)
                # The agent asks for the next value: it is done with this record.
                work.done(index, outputs)

        async def agent(stream: AsyncIterator[bytes]) -> None:
            async for output in detect(_Readings(values(stream), work)):  # type: ignore[arg-type]
                outputs.append(output)

        cpu_s = await _put_all(app.agent(topic, name="detect")(agent), [r.data for r in records])
        cpu0 = time.process_time()
        if seen[0]:
            work.done(seen[0] - 1, outputs)  # the last record: nothing asked for another
        return seen[0], cpu_s + time.process_time() - cpu0

    return _run(len(records), drive)
