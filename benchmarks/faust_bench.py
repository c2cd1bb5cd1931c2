"""The same per-record work as a faust-streaming agent, fed without Kafka.

The agent runs `benchmarks.plain.PlainWorker.handle` on every event, so faust and the plain
loop do identical work and the difference between them is faust's own per-event cost (the
message, its event, the agent's channel and stream iteration). Events are put through
`agent.test_context()`, faust's broker-less test harness (faust's own documented way to run
an agent without Kafka). faust-streaming is only in the `bench` extra: when it is missing or
fails, `run_faust` says why instead of raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.plain import PlainWorker


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


def run_faust(payloads: Sequence[bytes], *, flush_every: int = 5_000) -> FaustResult:
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
            events, cpu_s = asyncio.run(_drive(faust, payloads, flush_every))
    except Exception as exc:
        return FaustResult(0, 0.0, version, f"faust-streaming failed: {exc!r}")
    if events != len(payloads):
        return FaustResult(
            events, cpu_s, version, f"faust agent saw {events} of {len(payloads)} events"
        )
    return FaustResult(events, cpu_s, version, None)


async def _drive(faust: Any, payloads: Sequence[bytes], flush_every: int) -> tuple[int, float]:
    app = faust.App(
        "luxflow-bench",
        broker="kafka://127.0.0.1:9",  # never contacted: test_context() has no broker
        web_enabled=False,
        autodiscover=False,
    )
    topic = app.topic("telemetry", value_type=bytes, value_serializer="raw")
    worker = PlainWorker()

    async def detect(stream: AsyncIterator[bytes]) -> None:
        async for data in stream:
            worker.handle(data)
            if worker.records % flush_every == 0:
                worker.flush()

    agent = app.agent(topic, name="detect")(detect)
    async with agent.test_context() as running:
        cpu0 = time.process_time()
        for data in payloads:
            await running.put(data)
        cpu_s = time.process_time() - cpu0
    return worker.records, cpu_s
