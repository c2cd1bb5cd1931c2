"""faust-streaming beside luxflow, on the same work, fed without Kafka.

Two figures, both through `agent.test_context()` (faust's broker-less harness, its documented
way to run an agent without Kafka):

- same work (`run_same_work`): the faust agent runs the real lighting agent's function
  (the `detect` agent's `fun`, the very code luxflow runs, with the same domain calls
  and window updates on the same tables) over readings decoded with the app's decoder; its
  outputs go to the same production sinks (`lighting.wiring.shard_sinks` over the null
  clients); windows close and the app's advance callbacks run after every `batch` records,
  and the engine checkpoints (flush, snapshot) every `checkpoint_every` records, as luxflow's
  own pipeline does. So only the framework differs.
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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import RequestCounters, build_engine, null_sinks
from core.clock import ManualClock
from core.event import Event
from core.records import TRIM_HORIZON, Record
from lighting.settings import Settings
from sinks.memory import InMemorySink
from streams.app import App


@dataclass(frozen=True)
class FaustResult:
    events: int
    cpu_s: float
    version: str | None
    error: str | None  # why there is no figure

    @property
    def events_per_cpu_s(self) -> float | None:
        if self.error is not None or self.cpu_s <= 0:
            return None
        return self.events / self.cpu_s

    @property
    def us_per_event(self) -> float | None:
        if self.error is not None or self.events <= 0:
            return None
        return self.cpu_s / self.events * 1e6


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


def run_same_work(
    build_app: Callable[[], App],
    records: Sequence[Record],
    *,
    batch: int = 500,
    checkpoint_every: int = 5_000,
) -> FaustResult:
    """The real lighting agent inside a faust agent, with luxflow's tables and sinks."""
    lighting = build_app()
    detect = lighting.agents[0].fun
    decode = lighting.decoder
    first = records[0].arrival_ms if records else 0
    clock = ManualClock(first)
    shard_id = records[0].shard_id if records else "shardId-000000000000"
    engine = build_engine(lighting, shard_id, RequestCounters(), clock, with_sinks=False)
    engine.initialize(TRIM_HORIZON)
    state = engine.state
    sinks = null_sinks(Settings(), RequestCounters(), InMemorySink(), shard_id, clock)

    def checkpoint() -> None:
        for sink in sinks:
            sink.flush()
        engine.checkpoint.commit()  # snapshot the state, write the checkpoint

    def route(outputs: Sequence[object]) -> None:
        for sink in sinks:
            for item in outputs:
                sink.write(item)

    def advance() -> None:
        outputs = state.advance()
        clock_ms = state.event_clock_ms()
        if clock_ms is not None:
            for callback in lighting.advance_callbacks:
                outputs.extend(callback(clock_ms))
        route(outputs)

    async def drive(faust: Any) -> tuple[int, float]:
        app, topic = _faust_app(faust)
        seen = [0]

        async def readings(stream: AsyncIterator[bytes]) -> AsyncIterator[object]:
            async for data in stream:
                record = records[seen[0]]
                seen[0] += 1
                value = decode(data, record.arrival_ms)
                state.begin(Event.of(record, value))
                yield value
                if seen[0] % batch == 0:
                    advance()
                if seen[0] % checkpoint_every == 0:
                    checkpoint()

        async def agent(stream: AsyncIterator[bytes]) -> None:
            state.activate()
            outputs: list[object] = []
            async for output in detect(readings(stream)):  # type: ignore[arg-type]
                outputs.append(output)
                route(outputs)
                outputs.clear()

        cpu_s = await _put_all(app.agent(topic, name="detect")(agent), [r.data for r in records])
        advance()
        checkpoint()
        return seen[0], cpu_s

    return _run(len(records), drive)
