"""Prompt outputs (alarms) reach the stores with the batch that made them, long before the next
checkpoint; a crash between that flush and the checkpoint neither loses nor duplicates them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from core.clock import ManualClock
from core.records import TRIM_HORIZON, Position, Record
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.stream import Stream
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore

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
