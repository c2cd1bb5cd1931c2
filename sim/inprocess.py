"""The real lighting app driven in-process: one `ShardEngine` over `lighting.agents.build_app`
with in-memory sinks, state store and checkpointer, and a clock driven by the data.

This is how the simulator's scenarios, `evaluate --realistic` and the detection tests run the
rules: exactly the agent that production runs, without Kinesis or AWS. The processing clock
follows the records' arrival times (a continuous run: the shard never goes idle, so windows
close only by event time); `idle_close_ms` adds a quiet stretch at the end, as a shard that
stops receiving would see.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from core.clock import ManualClock
from core.records import TRIM_HORIZON, Record
from domain.events import EnergySpike, Fault, UsageReport
from domain.registry import Registry
from domain.telemetry import Reading, encode_reading
from lighting.agents import build_app
from lighting.registry import RegistryCache
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.testing import RecordingCheckpointer
from tables.partition import GraceBoost
from tables.store import InMemoryStateStore

SHARD_ID = "shardId-000000000000"


def _domain_events(item: object) -> Iterable[object]:
    """Faults, spikes and usage reports: what the evaluation scores."""
    return (item,) if isinstance(item, Fault | EnergySpike | UsageReport) else ()


def _identity(event: object) -> Hashable:
    assert isinstance(event, Fault | EnergySpike | UsageReport)
    return (type(event).__name__, event.event_id)


def _not_older(held: object, new: object) -> bool:
    """A fault's or spike's earlier revision never replaces a later one (the command model's
    condition)."""
    versioned = (Fault, EnergySpike)
    return not (
        isinstance(held, versioned) and isinstance(new, versioned) and held.revision > new.revision
    )


class ClockedSink(InMemorySink):
    """Keeps the last version of every domain event by identity (what the command model
    keeps; `written` holds every version routed) and the event clock at the flush that
    first stored each identity."""

    def __init__(self, event_ms: Callable[[], int]) -> None:
        super().__init__(_domain_events, _identity, replaces=_not_older)
        self._event_ms = event_ms
        self.written_at_ms: dict[Hashable, int] = {}

    def flush(self) -> None:
        now = self._event_ms()
        flushing = list(self.buffer)
        super().flush()
        for key in flushing:
            self.written_at_ms.setdefault(key, now)


@dataclass
class InProcessRun:
    """What a run stored: the last version of each fault, spike and usage report, and when
    each was first written (event clock at that checkpoint's flush)."""

    events: list[object] = field(default_factory=list)
    """Every fault, spike and usage report routed, in order (a fault: each version)."""
    faults: list[Fault] = field(default_factory=list)
    spikes: list[EnergySpike] = field(default_factory=list)
    usage: list[UsageReport] = field(default_factory=list)
    written_at_ms: dict[str, int] = field(default_factory=dict)
    """event_id -> event clock when first written."""
    grace_ms: int = 0
    """The run's window grace."""
    records: int = 0
    late_records: int = 0
    bad_records: int = 0
    checkpoints: int = 0
    dead_letters: int = 0
    state_sizes: dict[str, int] = field(default_factory=dict)


def run_in_process(
    records: Iterable[tuple[str, bytes, int]],
    registry: RegistryCache,
    *,
    grace_ms: int = 600_000,
    checkpoint_interval_ms: int = 5_000,
    idle_timeout_ms: int = 60_000,
    idle_close_ms: int | None = None,
    batch_ms: int = 1_000,
    grace_boost: Callable[[], GraceBoost] | None = None,
) -> InProcessRun:
    """Run ``(partition_key, data, arrival_ms)`` records (arrival order) through one shard of
    the real app. Records whose arrival falls in the same ``batch_ms`` go in one batch; the
    clock is set to the batch's last arrival before it is processed and a checkpoint is taken
    whenever one is due, as the runners do. ``idle_close_ms``: after the data, let that much
    processing time pass without records (ticks every second), closing windows as an idle
    shard does; ``None`` ends the run at the last record (a continuous run, cut)."""
    clock = ManualClock()
    app = build_app(registry, topic="telemetry", grace_ms=grace_ms)
    if grace_boost is not None:
        app.boost_grace(grace_boost)

    def event_ms() -> int:
        event_clock = engine.state.event_clock_ms()
        return event_clock if event_clock is not None else clock.now_ms

    sink = ClockedSink(event_ms)
    dead = InMemorySink(key=id)
    engine = ShardEngine(
        app,
        SHARD_ID,
        sinks=[sink],
        dead_letter=dead,
        state_store=InMemoryStateStore(),
        checkpointer=RecordingCheckpointer(),
        config=EngineConfig(checkpoint_interval_ms, idle_timeout_ms),
        now_ms=clock,
    )
    engine.initialize(TRIM_HORIZON)
    batch: list[Record] = []
    batch_end_ms: int | None = None

    def run_batch() -> None:
        engine.process_records(batch)
        batch.clear()
        if engine.checkpoint.due():
            engine.checkpoint.commit()

    for seq, (pk, data, arrival_ms) in enumerate(records, 1):
        if batch_end_ms is not None and arrival_ms >= batch_end_ms:
            run_batch()
            batch_end_ms = None
        if batch_end_ms is None:
            batch_end_ms = arrival_ms - arrival_ms % batch_ms + batch_ms
        clock.now_ms = max(clock.now_ms, arrival_ms)
        batch.append(Record(SHARD_ID, seq, 0, pk, data, arrival_ms))
    if batch:
        run_batch()
    if idle_close_ms is not None:
        end = clock.now_ms + idle_close_ms
        while clock.now_ms < end:
            clock.advance(1_000)
            engine.process_records([], millis_behind_latest=0)
            if engine.checkpoint.due():
                engine.checkpoint.commit()
    engine.checkpoint.commit()
    run = _result(engine, sink, dead)
    run.grace_ms = grace_ms
    return run


def _result(engine: ShardEngine, sink: ClockedSink, dead: InMemorySink) -> InProcessRun:
    run = InProcessRun(events=sink.written)
    for key, item in sink.stored.items():
        if isinstance(item, Fault):
            run.faults.append(item)
        elif isinstance(item, EnergySpike):
            run.spikes.append(item)
        elif isinstance(item, UsageReport):
            run.usage.append(item)
        run.written_at_ms[str(key[1]) if isinstance(key, tuple) else str(key)] = sink.written_at_ms[
            key
        ]
    counters = engine.counters
    run.records = counters.records
    run.late_records = counters.late_records
    run.bad_records = counters.bad_records
    run.checkpoints = counters.checkpoints
    run.dead_letters = len(dead.stored)
    engine.state.activate()
    run.state_sizes = {name: _size(engine, name) for name in engine.state.tables}
    return run


def _size(engine: ShardEngine, name: str) -> int:
    if name in engine.state.plain:
        return len(engine.state.plain[name].data)
    return engine.state.windowed[name].live_windows()


def records_of(readings: Iterable[Reading]) -> Iterable[tuple[str, bytes, int]]:
    """Readings as records keyed by site (the IoT rule's partition key), arriving at their
    own timestamp."""
    for reading in readings:
        yield reading.site_id, encode_reading(reading), reading.ts_ms


def registry_cache(registry: Registry) -> RegistryCache:
    """A cache over a fixed registry that never reloads, with no cap on unknown assets (the
    evaluation measures the rules; the cap is tested on its own)."""
    return RegistryCache(lambda: registry, 2**62, lambda: 0, unknown_asset_cap=None)
