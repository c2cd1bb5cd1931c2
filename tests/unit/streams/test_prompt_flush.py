"""Prompt outputs (alarms) reach the stores with the batch that made them, long before the next
checkpoint, and while a checkpoint saves the state in the background; a crash between that
flush and the checkpoint neither loses nor duplicates them."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import msgspec

from core.clock import ManualClock
from core.errors import CheckpointError
from core.records import TRIM_HORIZON, LeaseFence, Position, Record
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.stream import Stream
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore, Snapshot

SHARD = "shardId-000000000000"


class Alarm(msgspec.Struct, frozen=True):
    key: str
    at: int


class Total(msgspec.Struct, frozen=True):
    key: str
    total: int


def alarm_app() -> App:
    """Counts readings per key; every reading over 100 raises an alarm."""
    app = App("alarms")
    totals = app.Table("totals", default=int, value_type=int)
    topic = app.topic("t", decoder=lambda data, _arrival: int(data))
    app.prompt(Alarm)

    @app.agent(topic)
    async def watch(stream: Stream[int]) -> AsyncIterator[object]:
        async for value in stream:
            key = "k"
            totals[key] += value
            yield Total(key, totals[key])
            if value > 100:
                yield Alarm(key, stream.current_event.sequence_number)

    return app


def engine(store: InMemoryStateStore, sink: InMemorySink, cp: RecordingCheckpointer) -> ShardEngine:
    built = ShardEngine(
        alarm_app(),
        SHARD,
        sinks=[sink],
        dead_letter=InMemorySink(),
        state_store=store,
        checkpointer=cp,
        config=EngineConfig(checkpoint_interval_ms=60_000),
        now_ms=ManualClock(1_000),
    )
    built.initialize(TRIM_HORIZON)
    return built


def batch(first: int, *values: int) -> list[Record]:
    return [Record(SHARD, first + i, 0, "k", str(v).encode(), 1_000) for i, v in enumerate(values)]


def alarms(sink: InMemorySink) -> list[object]:
    return [o for o in sink.stored.values() if isinstance(o, Alarm)]


def test_an_alarm_is_stored_with_its_batch_while_other_outputs_wait_for_the_checkpoint() -> None:
    sink, cp = InMemorySink(), RecordingCheckpointer()
    shard = engine(InMemoryStateStore(), sink, cp)
    shard.process_records(batch(1, 1, 2))
    assert sink.stored == {}  # nothing prompt: everything waits for the checkpoint
    shard.process_records(batch(3, 500))
    assert alarms(sink) == [Alarm("k", 3)]
    assert Total("k", 503) in sink.stored.values()  # flushed with it
    assert cp.calls == []  # no checkpoint, and no state saved
    assert shard.counters.prompt_flushes == 1
    shard.process_records(batch(4, 3))
    assert Total("k", 506) not in sink.stored.values()  # back to the checkpoint's cadence


def test_a_crash_after_the_alarm_flush_and_before_the_checkpoint_loses_and_repeats_nothing() -> (
    None
):
    store, sink = InMemoryStateStore(), InMemorySink()
    first = engine(store, sink, RecordingCheckpointer())
    first.process_records(batch(1, 1, 2))
    first.checkpoint.commit()
    first.process_records(batch(3, 500, 4))
    assert alarms(sink) == [Alarm("k", 3)]
    # Crash: no checkpoint after record 2. The next owner restores the state at 2 and reads
    # records 3 and 4 again.
    cp = RecordingCheckpointer()
    second = engine(store, sink, cp)
    second.process_records(batch(3, 500, 4))
    second.checkpoint.commit()
    assert alarms(sink) == [Alarm("k", 3)]
    assert sorted(o.total for o in sink.stored.values() if isinstance(o, Total)) == [1, 3, 503, 507]
    assert cp.positions[SHARD] == Position(4)


class GatedStore(InMemoryStateStore):
    """A state store whose saves begun while `hold` is set wait for `release` (a slow state
    table), and fail if `failing` is set when they go on."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = True
        self.release = threading.Event()
        self.started = threading.Event()
        self.failing = False

    def save(self, shard_id: str, snapshot: Snapshot, fence: LeaseFence | None = None) -> None:
        self.started.set()
        if self.hold:
            self.release.wait(timeout=30)
        if self.failing:
            raise CheckpointError("the state table is down")
        super().save(shard_id, snapshot, fence=fence)


def background_engine(
    store: InMemoryStateStore, sink: InMemorySink, cp: RecordingCheckpointer, clock: ManualClock
) -> ShardEngine:
    built = ShardEngine(
        alarm_app(),
        SHARD,
        sinks=[sink],
        dead_letter=InMemorySink(),
        state_store=store,
        checkpointer=cp,
        config=EngineConfig(checkpoint_interval_ms=60_000, save_in_background=True),
        now_ms=clock,
    )
    built.initialize(TRIM_HORIZON)
    return built


def test_an_alarm_is_stored_while_the_checkpoint_saves_the_state_in_the_background() -> None:
    store, sink, cp, clock = GatedStore(), InMemorySink(), RecordingCheckpointer(), ManualClock(0)
    shard = background_engine(store, sink, cp, clock)
    shard.process_records(batch(1, 1, 2))
    clock.now_ms = 60_000  # the checkpoint is due with the next batch
    shard.process_records(batch(3, 3))
    assert store.started.wait(timeout=30)  # saving records 1 to 3, held by the slow store
    assert Total("k", 6) in sink.stored.values()  # flushed before the save began
    shard.process_records(batch(4, 500))  # processed while the save is under way
    assert alarms(sink) == [Alarm("k", 4)]
    assert cp.calls == [] and not shard.health.settled
    store.release.set()
    shard.checkpoint.collect(wait=True)
    # The position saved is the one whose state and outputs were durable when the save began.
    assert cp.calls == [(SHARD, Position(3))]
    assert store.load(SHARD).position == Position(3)  # type: ignore[union-attr]
    assert shard.counters.checkpoints == 1
    shard.shutdown_requested()
    assert cp.positions[SHARD] == Position(4)


def test_a_failed_background_save_commits_nothing_and_is_retried() -> None:
    store, sink, cp, clock = GatedStore(), InMemorySink(), RecordingCheckpointer(), ManualClock(0)
    store.failing, store.hold = True, False
    shard = background_engine(store, sink, cp, clock)
    shard.process_records(batch(1, 1))
    clock.now_ms = 60_000
    shard.process_records(batch(2, 2))
    shard.checkpoint.collect(wait=True)
    assert cp.calls == [] and store.load(SHARD) is None
    assert shard.counters.failed_checkpoints == 1 and shard.checkpoint.pending
    store.failing = False
    clock.now_ms = 200_000  # past the retry pause
    shard.process_records([])
    shard.checkpoint.collect(wait=True)
    assert cp.positions[SHARD] == Position(2)
    assert store.load(SHARD).position == Position(2)  # type: ignore[union-attr]


def test_a_crash_during_a_background_save_after_the_alarm_flush_loses_and_repeats_nothing() -> None:
    store, sink, clock = GatedStore(), InMemorySink(), ManualClock(0)
    store.hold = False
    first = background_engine(store, sink, RecordingCheckpointer(), clock)
    first.process_records(batch(1, 1, 2))
    first.checkpoint.commit()  # state and position at record 2
    store.hold = True
    clock.now_ms = 60_000
    first.process_records(batch(3, 500, 4))  # the alarm is flushed, then the save hangs
    assert store.started.wait(timeout=30)
    assert alarms(sink) == [Alarm("k", 3)]
    # Crash: the save never lands. The next owner restores the state at 2 and reads records
    # 3 and 4 again.
    store.hold = False
    cp = RecordingCheckpointer()
    second = engine(store, sink, cp)
    second.process_records(batch(3, 500, 4))
    second.checkpoint.commit()
    store.failing = True  # the crashed worker's save: gone with its process
    store.release.set()
    assert alarms(sink) == [Alarm("k", 3)]
    assert sorted(o.total for o in sink.stored.values() if isinstance(o, Total)) == [1, 3, 503, 507]
    assert cp.positions[SHARD] == Position(4)
