"""Framework overhead per record: a no-op agent in luxflow, faust-streaming, Quix Streams and a
plain loop.

Each runs the same records through an agent (or function) that does nothing with them, so
the CPU per record is the framework's own cost: for luxflow, `ShardEngine.process` (the event
built, the shard's tables activated, the agent's coroutine resumed, late and output checks)
in batches of `batch` with a checkpoint every `checkpoint_every` records; for faust, its
test_context (message, event, channel, stream); for Quix, `Application`'s per-message path
after the poll (message context, copied context, composed pipeline of one step, offset
stored); for the plain loop, a Python `for` calling a function. Best of `repeat`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from benchmarks import faust_bench, quix_bench
from benchmarks.harness import RequestCounters, build_engine
from core.clock import ManualClock
from core.records import TRIM_HORIZON, Record
from streams.app import App
from streams.stream import Stream


def _noop_app() -> App:
    app = App("noop")
    topic = app.topic("telemetry", decoder=lambda data, _arrival_ms: data)

    @app.agent(topic)
    async def noop(stream: Stream[bytes]) -> AsyncIterator[object]:
        async for _data in stream:
            pass
        if False:  # an agent is an async generator, even one that yields nothing
            yield None

    return app


def luxflow_us(
    records: Sequence[Record], *, batch: int = 500, checkpoint_every: int = 5_000, repeat: int = 3
) -> float:
    best = float("inf")
    for _ in range(repeat):
        clock = ManualClock(records[0].arrival_ms if records else 0)
        engine = build_engine(
            _noop_app(), "shardId-000000000000", RequestCounters(), clock, with_sinks=False
        )
        engine.initialize(TRIM_HORIZON)
        cpu0 = time.process_time()
        for lo in range(0, len(records), checkpoint_every):
            interval = records[lo : lo + checkpoint_every]
            for b in range(0, len(interval), batch):
                engine.process_records(interval[b : b + batch])
            engine.checkpoint.commit()
        best = min(best, time.process_time() - cpu0)
    return best / max(1, len(records)) * 1e6


def _noop(_data: bytes) -> None:
    pass


def plain_us(payloads: Sequence[bytes], *, repeat: int = 3) -> float:
    best = float("inf")
    handle = _noop
    for _ in range(repeat):
        cpu0 = time.process_time()
        for data in payloads:
            handle(data)
        best = min(best, time.process_time() - cpu0)
    return best / max(1, len(payloads)) * 1e6


def faust_us(payloads: Sequence[bytes], *, repeat: int = 2) -> tuple[float | None, str | None]:
    results = [faust_bench.noop_us_per_event(payloads) for _ in range(repeat)]
    figures = [r.us_per_event for r in results if r.us_per_event is not None]
    if not figures:
        return None, results[0].error
    return min(figures), None


def quix_us(records: Sequence[Record], *, repeat: int = 2) -> tuple[float | None, str | None]:
    results = [quix_bench.noop_us_per_event(records) for _ in range(repeat)]
    figures = [r.us_per_event for r in results if r.us_per_event is not None]
    if not figures:
        return None, results[0].error
    return min(figures), None
