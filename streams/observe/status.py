"""Reading a worker's counters into `WorkerStatus` snapshots: per shard (its engine's counters
and health), per sink, and the whole local runner."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from core.clock import Clock, wall_clock_ms
from sinks.base import Sink, SinkCounters
from streams.engine import ShardEngine
from streams.kinesis.local_runner import LocalRunner
from streams.observe.metrics import (
    ENDED,
    FAILED,
    RELEASED,
    RUNNING,
    ShardStatus,
    SinkStatus,
    WorkerStatus,
)

log = logging.getLogger(__name__)

RegistryStats = Callable[[], tuple[int | None, int | None]]
"""(time the registry was loaded in ms, distinct unknown assets seen)."""


# -- status of engines and runners ----------------------------------------------------------


def sink_statuses(sinks: Sequence[Sink]) -> tuple[dict[str, SinkStatus], dict[str, int]]:
    """Counters of each sink, named by kind (DynamoDBSink -> "dynamodb"), and the dead
    letters by origin of the sinks that count them."""
    statuses: dict[str, SinkStatus] = {}
    dead: dict[str, int] = {}
    for sink in sinks:
        counters = getattr(sink, "counters", None)
        if isinstance(counters, SinkCounters):
            name = type(sink).__name__.removesuffix("Sink").lower() or "sink"
            while name in statuses:
                name += "+"
            statuses[name] = SinkStatus(
                counters.calls,
                counters.retries,
                counters.throttles,
                counters.rejected,
                counters.request_us,
            )
        by_origin = getattr(sink, "by_origin", None)
        if isinstance(by_origin, dict):
            for origin, count in by_origin.copy().items():
                dead[origin] = dead.get(origin, 0) + count
    return statuses, dead


def engine_status(
    engine: ShardEngine,
    generation: str,
    *,
    phase: str = RUNNING,
    millis_behind: int | None = None,
    caught_up: bool = False,
    error: str | None = None,
    now_ms: Clock = wall_clock_ms,
) -> ShardStatus:
    """A snapshot of one engine's counters (plain reads: safe from another thread)."""
    c = engine.counters
    sinks, dead = sink_statuses(engine.sinks)
    return ShardStatus(
        shard_id=engine.shard_id,
        generation=generation,
        phase=phase,
        records_read=c.records + c.skipped_already_applied,
        records_processed=c.records - c.bad_records,
        late_records=c.late_records,
        checkpoints=c.checkpoints,
        checkpoint_us=c.checkpoint_us,
        last_checkpoint_ms=c.last_checkpoint_ms,
        sink_errors=c.sink_errors,
        state_keys=c.state_keys,
        state_bytes=c.state_bytes,
        snapshot_bytes=c.snapshot_bytes,
        dead_letters=dead,
        sinks=sinks,
        millis_behind=millis_behind,
        pending=engine.checkpoint.pending,
        caught_up=caught_up,
        error=error,
        updated_ms=now_ms(),
    )


def local_worker_status(
    runner: LocalRunner, registry: RegistryStats | None = None, now_ms: Clock = wall_clock_ms
) -> WorkerStatus:
    """The local runner's shards: RUNNING while leased, FAILED while waiting to retry after an
    error, ENDED at SHARD_END, RELEASED once given up (stopped or lost)."""
    held = set(runner.held_shards())
    shards: list[ShardStatus] = []
    takeovers = losses = 0
    for shard_id, progress in runner.progress.copy().items():
        takeovers += progress.lease_takeovers
        losses += progress.lease_losses
        engine = progress.engine
        if engine is None:
            continue
        if progress.ended:
            phase = ENDED
        elif progress.error is not None:
            phase = FAILED
        elif shard_id in held:
            phase = RUNNING
        else:
            phase = RELEASED
        shards.append(
            engine_status(
                engine,
                str(id(engine)),
                phase=phase,
                millis_behind=progress.millis_behind,
                caught_up=progress.quiet_since_s is not None,
                error=progress.error,
                now_ms=now_ms,
            )
        )
    loaded_ms, unknown = registry() if registry is not None else (None, None)
    return WorkerStatus(shards, takeovers, losses, loaded_ms, unknown)
