"""The current-state item in the command model, with the real lighting app and the real
deadband select: an operator-visible change is stored with its batch, drift waits for the
refresh, and neither waits for the checkpoint."""

from __future__ import annotations

from core.clock import MINUTE_MS, ManualClock
from core.records import TRIM_HORIZON, Record
from domain import views
from domain.deadband import Deadband
from domain.telemetry import Telemetry, encode_telemetry
from domain.timestamps import format_ts
from lighting.agents import build_app
from lighting.registry import empty_registry
from lighting.wiring import deadbanded
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore

T0_MS = 1_800_000_000_000 - 1_800_000_000_000 % (60 * MINUTE_MS)
SHARD = "shardId-000000000000"


def reading(minute: int, power_w: float, *, on: bool = True) -> Record:
    ts_ms = T0_MS + minute * MINUTE_MS
    data = encode_telemetry(
        Telemetry(
            v=1,
            site_id="site-1",
            building_id="b-1",
            room_id="r-1",
            asset_id="lamp-1",
            ts=format_ts(ts_ms),
            power_w=power_w,
            voltage_v=230.0,
            current_a=power_w / 230.0,
            lux=300.0,
            on=on,
            dim_level=100,
        )
    )
    return Record(SHARD, minute + 1, 0, "site-1", data, ts_ms + 500)


def stored_state_ts(sink: InMemorySink) -> int | None:
    items = [w.item for w in sink.stored.values() if w.item["sk"] == "STATE"]  # type: ignore[attr-defined]
    return int(items[0]["ts_ms"]) if items else None


def test_a_change_is_stored_with_its_batch_and_drift_waits_for_the_refresh() -> None:
    sink = InMemorySink(
        deadbanded(views.command_writes, Deadband(refresh_ms=15 * MINUTE_MS)),
        key=lambda write: (write.item["pk"], write.item["sk"]),  # type: ignore[attr-defined]
    )
    checkpoints = RecordingCheckpointer()
    clock = ManualClock(T0_MS)
    engine = ShardEngine(
        build_app(empty_registry(), topic="t", grace_ms=10 * MINUTE_MS),
        SHARD,
        sinks=[sink],
        dead_letter=InMemorySink(),
        state_store=InMemoryStateStore(),
        checkpointer=checkpoints,
        config=EngineConfig(checkpoint_interval_ms=10**9),
        now_ms=clock,
    )
    engine.initialize(TRIM_HORIZON)

    def deliver(record: Record) -> int | None:
        clock.now_ms = record.arrival_ms
        engine.process_records([record])
        return stored_state_ts(sink)

    assert deliver(reading(0, 60.0)) == T0_MS  # first state: at once
    assert deliver(reading(1, 60.8)) == T0_MS  # drift: not written
    assert deliver(reading(2, 59.5)) == T0_MS
    assert deliver(reading(3, 0.0, on=False)) == T0_MS + 3 * MINUTE_MS  # switched off: at once
    for minute in range(4, 18):
        last = deliver(reading(minute, 0.0, on=False))
    assert last == T0_MS + 3 * MINUTE_MS  # nothing changed for 14 minutes
    assert deliver(reading(18, 0.0, on=False)) == T0_MS + 18 * MINUTE_MS  # the refresh
    assert checkpoints.calls == []  # none of it waited for a checkpoint
