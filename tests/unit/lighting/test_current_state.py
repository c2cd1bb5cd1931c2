"""The current-state item in the command model, with the real lighting app and its
deadband: an operator-visible change is stored with its batch, drift waits for the refresh,
neither waits for the checkpoint, and a shard restored from its snapshot decides exactly as a
run that never stopped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import MINUTE_MS, ManualClock
from core.records import TRIM_HORIZON, Position, Record
from domain import views
from domain.deadband import Deadband, refresh_phase_ms
from domain.events import AssetState
from domain.telemetry import Telemetry, encode_telemetry
from domain.timestamps import format_ts
from lighting.agents import build_app
from lighting.registry import RegistryCache, empty_registry
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.testing import AgentTestContext, RecordingCheckpointer
from tables.store import InMemoryStateStore

T0_MS = 1_800_000_000_000 - 1_800_000_000_000 % (60 * MINUTE_MS)
SHARD = "shardId-000000000000"


LAMP_T0_MS = T0_MS + refresh_phase_ms("lamp-1", 15 * MINUTE_MS)
"""At lamp-1's refresh phase: its phase instants (15-minute refresh) are minutes 15, 30, ...
after it."""


def reading(minute: int, power_w: float, *, on: bool = True) -> Record:
    ts_ms = LAMP_T0_MS + minute * MINUTE_MS
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
        views.command_writes,
        key=lambda write: (write.item["pk"], write.item["sk"]),  # type: ignore[attr-defined]
    )
    checkpoints = RecordingCheckpointer()
    clock = ManualClock(LAMP_T0_MS)
    engine = ShardEngine(
        build_app(
            empty_registry(),
            topic="t",
            grace_ms=10 * MINUTE_MS,
            deadband=Deadband(refresh_ms=15 * MINUTE_MS),
        ),
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

    assert deliver(reading(0, 60.0)) == LAMP_T0_MS  # first state: at once
    assert deliver(reading(1, 60.8)) == LAMP_T0_MS  # drift: not written
    assert deliver(reading(2, 59.5)) == LAMP_T0_MS
    switched_off_ms = LAMP_T0_MS + 3 * MINUTE_MS
    assert deliver(reading(3, 0.0, on=False)) == switched_off_ms  # switched off: at once
    for minute in range(4, 18):
        last = deliver(reading(minute, 0.0, on=False))
    assert last == switched_off_ms  # nothing changed for 14 minutes
    # The refresh: a full period after the change ...
    assert deliver(reading(18, 0.0, on=False)) == LAMP_T0_MS + 18 * MINUTE_MS
    for minute in range(19, 30):
        assert deliver(reading(minute, 0.0, on=False)) == LAMP_T0_MS + 18 * MINUTE_MS
    # ... and the next one back at the asset's phase, less than a period later.
    assert deliver(reading(30, 0.0, on=False)) == LAMP_T0_MS + 30 * MINUTE_MS
    assert checkpoints.calls == []  # none of it waited for a checkpoint


def asset_reading(seq: int, ts_ms: int, asset: str, power_w: float, on: bool, dim: int) -> Record:
    data = encode_telemetry(
        Telemetry(
            v=1,
            site_id="site-1",
            building_id="b-1",
            room_id="r-1",
            asset_id=asset,
            ts=format_ts(ts_ms),
            power_w=power_w if on else 0.0,
            voltage_v=230.0,
            current_a=(power_w if on else 0.0) / 230.0,
            lux=300.0,
            on=on,
            dim_level=dim,
        )
    )
    return Record(SHARD, seq, 0, "site-1", data, ts_ms + 500)


readings_st = st.lists(
    st.tuples(
        st.sampled_from(["lamp-1", "lamp-2"]),
        st.integers(5_000, 6 * MINUTE_MS),  # event time since the previous reading
        st.floats(40.0, 80.0),
        st.booleans() | st.just(True),
        st.sampled_from([60, 100]),
    ),
    min_size=1,
    max_size=60,
)


def as_records(steps: list[tuple[str, int, float, bool, int]]) -> list[Record]:
    records, ts_ms = [], T0_MS
    for seq, (asset, gap_ms, power_w, on, dim) in enumerate(steps, start=1):
        ts_ms += gap_ms
        records.append(asset_reading(seq, ts_ms, asset, power_w, on, dim))
    return records


def newer(held: object, new: object) -> bool:
    """A conditional put's outcome: a plain put always replaces, a newer-than put only a
    smaller value of its field."""
    assert isinstance(held, views.CommandWrite) and isinstance(new, views.CommandWrite)
    field = new.newer_than_field
    if field is None:
        return True
    return held.item[field] < new.item[field]  # type: ignore[operator]


def run_with_crashes(
    records: list[Record],
    checkpoints: set[int],
    crashes: set[int],
    *,
    registry: RegistryCache | None = None,
    grace_ms: int = 10 * MINUTE_MS,
) -> tuple[set[tuple[str, int]], dict[object, object]]:
    """The current states the agent chose to write (asset, ts_ms) and the command-model items
    stored, when the shard checkpoints after the records at `checkpoints` and crashes after
    those at `crashes` (each once), restarting from its snapshot and re-reading the records
    after its checkpoint, as a runner does. `registry`: `empty_registry()` by default."""
    command = InMemorySink(
        views.command_writes,
        key=lambda write: (write.item["pk"], write.item["sk"]),  # type: ignore[attr-defined]
        replaces=newer,
    )
    ctx = AgentTestContext(
        build_app(registry or empty_registry(), topic="t", grace_ms=grace_ms),
        now_ms=T0_MS,
        sinks=[command],
        config=EngineConfig(checkpoint_interval_ms=10**12),
    )
    crashed: set[int] = set()
    index = 0
    while index < len(records):
        record = records[index]
        ctx.clock.now_ms = record.arrival_ms
        ctx.deliver([record])
        if index in checkpoints:
            ctx.checkpoint()
        if index in crashes and index not in crashed:
            crashed.add(index)
            ctx.restart()
            position = ctx.checkpointer.positions.get(SHARD)
            after = position.sequence_number if isinstance(position, Position) else 0
            index = next(
                (i for i, r in enumerate(records) if r.sequence_number > after), len(records)
            )
            continue
        index += 1
    chosen = {(o.asset_id, o.ts_ms) for o in ctx.outputs if isinstance(o, AssetState)}
    return chosen, {key: write.item for key, write in command.stored.items()}  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(steps=readings_st, data=st.data())
def test_a_restore_from_the_snapshot_then_replay_writes_exactly_the_states_of_a_straight_run(
    steps: list[tuple[str, int, float, bool, int]], data: st.DataObject
) -> None:
    records = as_records(steps)
    points = st.sets(st.integers(0, len(records) - 1), max_size=4)
    checkpoints, crashes = data.draw(points), data.draw(points)
    straight_chosen, straight_items = run_with_crashes(records, set(), set())
    chosen, items = run_with_crashes(records, checkpoints, crashes)
    assert chosen == straight_chosen
    assert items == straight_items
