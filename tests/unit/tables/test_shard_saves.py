"""State stays changed until its save succeeds; incremental snapshots; the event context an
agent sees (`stream.current_event`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from benchmarks.table_memory import checkpoint_bytes
from core.errors import LeaseLostError, StateStoreError
from core.event import Event
from core.records import SHARD_END, LeaseFence, Position, Record
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.stream import Stream
from streams.testing import AgentTestContext, RecordingCheckpointer
from tables.shard import ShardState
from tables.snapshot import decompress
from tables.store import InMemoryStateStore, Snapshot
from tables.table import Table

SHARD = "shardId-000000000000"


class FailingOnce(InMemoryStateStore):
    """Its `fail_next` save raises, as a throttled DynamoDB past its retries would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def save(self, shard_id: str, snapshot: Snapshot, fence: LeaseFence | None = None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StateStoreError("throttled")
        super().save(shard_id, snapshot, fence)


def counting_app(seen: list[Event[Any]] | None = None) -> App:
    app = App("count")
    topic = app.topic("t", decoder=lambda data, _ms: data.decode())
    counts = app.Table("counts", default=int, value_type=int)

    @app.agent(topic)
    async def count(stream: Stream[str]) -> AsyncIterator[object]:
        async for key in stream:
            if seen is not None and stream.current_event is not None:
                seen.append(stream.current_event)
            counts[key] += 1
            yield key

    return app


def engine_of(app: App, store: InMemoryStateStore, cp: RecordingCheckpointer) -> ShardEngine:
    """An engine of `app` on SHARD over `store`, initialized after TRIM_HORIZON."""
    return AgentTestContext(
        app,
        shard_id=SHARD,
        now_ms=0,
        store=store,
        checkpointer=cp,
        config=EngineConfig(checkpoint_interval_ms=10**9),
    ).engine


def records(first: int, last: int) -> list[Record]:
    return [Record(SHARD, n, 0, "site-1", b"k", 1_000 + n) for n in range(first, last + 1)]


def count_after_restart(app: App, store: InMemoryStateStore) -> int:
    engine = engine_of(app, store, RecordingCheckpointer())
    engine.state.activate()
    table = next(t for t in app.tables if t.name == "counts")
    return int(table["k"])


def test_a_failed_save_is_not_checkpointed_past_and_the_next_save_carries_it() -> None:
    app, store, cp = counting_app(), FailingOnce(), RecordingCheckpointer()
    engine = engine_of(app, store, cp)
    engine.process_records(records(1, 3))
    engine.checkpoint.commit()
    engine.process_records(records(4, 5))
    store.fail_next = True
    with pytest.raises(StateStoreError):
        engine.checkpoint.commit()
    assert cp.positions[SHARD] == Position(3)  # not past unsaved state
    engine.process_records(records(6, 8))
    engine.checkpoint.commit()
    assert cp.positions[SHARD] == Position(8)
    assert count_after_restart(app, store) == 8  # not 3 + 3


def test_shard_end_after_a_failed_save_saves_the_full_state() -> None:
    app, store, cp = counting_app(), FailingOnce(), RecordingCheckpointer()
    engine = engine_of(app, store, cp)
    engine.process_records(records(1, 4))
    store.fail_next = True
    with pytest.raises(StateStoreError):
        engine.checkpoint.commit()
    engine.shard_ended()
    assert cp.positions[SHARD] == SHARD_END
    stored = store.load(SHARD)
    assert stored is not None
    assert stored.final
    assert stored.position == Position(4)
    assert count_after_restart(app, store) == 4


def test_a_stale_owner_cannot_save_over_a_later_position() -> None:
    store = InMemoryStateStore()
    store.save(SHARD, Snapshot(SHARD, Position(5), 0, b"b"))
    with pytest.raises(LeaseLostError):
        store.save(SHARD, Snapshot(SHARD, Position(4), 0, b"a"))
    store.leases[SHARD] = ("b", 2)
    with pytest.raises(LeaseLostError):
        store.save(SHARD, Snapshot(SHARD, Position(6), 0, b"a"), LeaseFence("l", SHARD, "a", 1))


def test_checkpoints_write_deltas_and_restart_from_base_plus_deltas() -> None:
    app, store, cp = counting_app(), InMemoryStateStore(), RecordingCheckpointer()
    engine = engine_of(app, store, cp)
    many = [Record(SHARD, n, 0, f"site-{n}", f"key-{n}".encode(), 0) for n in range(1, 201)]
    engine.process_records(many)
    engine.checkpoint.commit()
    engine.process_records(records(201, 203))
    engine.checkpoint.commit()
    stored = store.load(SHARD)
    assert stored is not None
    assert len(stored.deltas) == 1
    # Compared as encoded: the base, over 1 KB, is stored deflated (`tables.snapshot.compress`).
    assert len(stored.deltas[0]) < len(decompress(SHARD, stored.base)) / 20
    assert count_after_restart(app, store) == 3


def test_deletions_travel_in_deltas() -> None:
    t = Table("t", default=int, value_type=int)
    state = ShardState([t], "s", lambda: 0, 1_000)
    state.activate()
    for i in range(20):
        state.begin(Event("s", i, 0, "p", 0, None))
        t[f"k{i}"] = i
    chain = []
    for step in range(3):
        if step == 1:
            del t["k3"]
        if step == 2:
            t["k4"] = 44
        pending = state.snapshot()
        assert pending is not None
        assert pending.delta == (step > 0)
        state.saved(pending)
        chain.append(pending.data)
    other = ShardState([t], "s", lambda: 0, 1_000)
    other.restore([chain], lambda _pk: True)
    other.activate()
    assert "k3" not in t
    assert t["k4"] == 44
    assert len(t) == 19


def test_compaction_after_max_deltas() -> None:
    t = Table("t", default=int, value_type=int)
    state = ShardState([t], "s", lambda: 0, 1_000, max_deltas=2)
    state.activate()
    state.begin(Event("s", 0, 0, "p", 0, None))
    for i in range(50):
        t[f"k{i}"] = i
    kinds = []
    for i in range(5):
        t["k0"] = i
        pending = state.snapshot()
        assert pending is not None
        state.saved(pending)
        kinds.append(pending.delta)
    assert kinds == [False, True, True, False, True]


def test_incremental_checkpoints_write_a_fraction_of_full_ones() -> None:
    sizes = checkpoint_bytes(keys=5_000, checkpoints=24, changed_per_checkpoint=417)
    assert sizes["incremental"] < sizes["full"] / 3


def test_the_agent_sees_the_event_context() -> None:
    seen: list[Event[Any]] = []
    engine = engine_of(counting_app(seen), InMemoryStateStore(), RecordingCheckpointer())
    engine.process_records([Record(SHARD, 7, 2, "site-9", b"k", 1_234)])
    assert seen == [Event(SHARD, 7, 2, "site-9", 1_234, "k")]
    assert engine.state.partition_key == "site-9"


def test_an_empty_read_behind_the_tip_does_not_count_as_idle() -> None:
    """Idle close moves the event clock on by the time since the last record was read; a
    shard whose reads come back empty while its stream still holds records
    (MillisBehindLatest > 0) is not idle."""
    from core.clock import HOUR_MS, ManualClock

    clock = ManualClock(1_000_000)
    table: Table[int] = Table("t", default=int, value_type=int)
    windowed = table.tumbling(HOUR_MS, grace_ms=0).relative_to_field(lambda v: v)
    state = ShardState([table], "s", clock, idle_timeout_ms=1_000)
    state.activate()
    state.begin(Event("s", 1, 0, "pk", 0, 5))
    windowed.add("k", 1, at_ms=5)
    state.advance()
    for _ in range(5):
        clock.now_ms += 1_000
        state.behind()
        assert state.advance() == []
    assert state.event_clock_ms() == 5
    clock.now_ms += 1_000
    assert state.advance() == []  # idle now: quiet since the record was read, 6 s ago
    assert state.event_clock_ms() == 5 + 6_000
