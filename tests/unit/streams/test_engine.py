"""The per-shard engine with in-memory sinks, store and checkpointer: the delivery contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from core.clock import ManualClock
from core.errors import SinkError
from core.records import SHARD_END, DeadLetter, Position, Record
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import EngineConfig, Lineage
from streams.stream import Stream
from streams.testing import AgentTestContext, RecordingCheckpointer
from tables.store import InMemoryStateStore

SHARD = "shardId-000000000000"


def decode(data: bytes, _arrival_ms: int) -> tuple[str, int]:
    key, _, value = data.decode().partition("=")
    if not value.isdigit():
        raise ValueError(f"bad value {value!r}")
    return key, int(value)


def counting_app() -> App:
    """Sums values per key; emits ("total", key, sum) after each record."""
    app = App("test")
    topic = app.topic("t", decoder=decode)
    totals = app.Table("totals", default=int, value_type=int)

    @app.agent(topic)
    async def count(stream: Stream[tuple[str, int]]) -> AsyncIterator[object]:
        async for key, value in stream:
            totals[key] += value
            yield ("total", key, totals[key])

    return app


def record(seq: int, data: bytes, pk: str = "site-1") -> Record:
    return Record(SHARD, seq, 0, pk, data, 1_000 + seq)


def build(
    app: App, store: InMemoryStateStore, checkpointer: RecordingCheckpointer, clock: ManualClock
) -> tuple[ShardEngine, InMemorySink, InMemorySink]:
    """An engine of `app` on SHARD, initialized, with its output and dead-letter sinks."""
    ctx = AgentTestContext(
        app,
        shard_id=SHARD,
        clock=clock,
        store=store,
        checkpointer=checkpointer,
        config=EngineConfig(checkpoint_interval_ms=1_000, idle_timeout_ms=10_000),
    )
    return ctx.engine, ctx.sink, ctx.dead_letter_sink


def outputs(sink: InMemorySink) -> set[object]:
    return set(sink.stored.values())


def test_outputs_reach_the_sink_only_at_the_checkpoint_and_in_order() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, _ = build(counting_app(), store, checkpointer, clock)
    engine.process_records([record(1, b"a=1"), record(2, b"a=2"), record(3, b"b=5")])
    assert sink.stored == {}
    engine.checkpoint.commit()
    assert outputs(sink) == {("total", "a", 1), ("total", "a", 3), ("total", "b", 5)}
    assert checkpointer.positions == {SHARD: Position(3, 0)}
    snapshot = store.load(SHARD)
    assert snapshot is not None and snapshot.position == Position(3, 0)


def test_a_failed_flush_aborts_the_checkpoint_and_keeps_the_outputs() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, _ = build(counting_app(), store, checkpointer, clock)
    engine.process_records([record(1, b"a=1")])
    sink.fail_flushes = 1
    with pytest.raises(SinkError):
        engine.checkpoint.commit()
    assert checkpointer.positions == {}
    assert store.load(SHARD) is None
    engine.checkpoint.commit()
    assert outputs(sink) == {("total", "a", 1)}
    assert checkpointer.positions == {SHARD: Position(1, 0)}


def test_bad_records_go_to_the_dead_letter_output_and_the_shard_goes_on() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, dead = build(counting_app(), store, checkpointer, clock)
    engine.process_records([record(1, b"a=1"), record(2, b"a=x"), record(3, b"a=2")])
    engine.checkpoint.commit()
    assert outputs(sink) == {("total", "a", 1), ("total", "a", 3)}
    letters = list(dead.stored.values())
    assert len(letters) == 1
    letter = letters[0]
    assert isinstance(letter, DeadLetter)
    assert (letter.sequence_number, letter.origin, letter.data) == (2, "decode", b"a=x")
    assert letter.reason == "bad value 'x'"
    assert engine.counters.bad_records == 1


def test_after_a_crash_records_already_in_the_state_are_not_applied_twice() -> None:
    store, clock = InMemoryStateStore(), ManualClock()
    first, _, _ = build(counting_app(), store, RecordingCheckpointer(), clock)
    first.process_records([record(1, b"a=1"), record(2, b"a=2")])
    first.checkpoint.commit()
    first.process_records([record(3, b"a=4")])
    # Crash here: record 3's output and state are lost; the checkpoint says 2.

    restarted, sink, _ = build(counting_app(), store, RecordingCheckpointer(), clock)
    assert restarted.checkpoint.position == Position(2, 0)
    # The runner restarts after the checkpoint, but a source may hand older records again.
    restarted.process_records([record(2, b"a=2"), record(3, b"a=4")])
    restarted.checkpoint.commit()
    assert outputs(sink) == {("total", "a", 7)}
    assert restarted.counters.skipped_already_applied == 1


def test_lease_lost_discards_everything_and_never_checkpoints() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, dead = build(counting_app(), store, checkpointer, clock)
    engine.process_records([record(1, b"a=1"), record(2, b"bad")])
    engine.lease_lost()
    assert sink.buffer == {} and sink.stored == {}
    assert dead.buffer == {}
    assert checkpointer.positions == {}


def test_shard_end_hands_state_to_the_children_by_hash_range() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    parent, _, _ = build(counting_app(), store, checkpointer, clock)
    parent.process_records([record(1, b"a=1", pk="site-1"), record(2, b"b=2", pk="site-2")])
    parent.shard_ended()
    assert checkpointer.positions == {SHARD: SHARD_END}

    child_app = counting_app()
    child_ctx = AgentTestContext(
        child_app,
        shard_id="shardId-000000000001",
        clock=clock,
        store=store,
        checkpointer=checkpointer,
        lineage=Lineage((SHARD,), lambda pk: pk == "site-2"),
    )
    child, sink = child_ctx.engine, child_ctx.sink
    child.process_records([Record("shardId-000000000001", 10, 0, "site-2", b"b=3", 2_000)])
    child.process_records([Record("shardId-000000000001", 11, 0, "site-1", b"a=5", 2_001)])
    child.checkpoint.commit()
    # site-2's total continues from the parent; site-1 belonged to the other child.
    assert outputs(sink) == {("total", "b", 5), ("total", "a", 5)}


def test_a_checkpoint_is_written_after_the_interval_only_when_something_happened() -> None:
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, _, _ = build(counting_app(), store, checkpointer, clock)
    clock.now_ms = 5_000
    engine.process_records([])
    assert checkpointer.calls == []  # nothing happened
    engine.process_records([record(1, b"a=1")])
    assert checkpointer.calls == [(SHARD, Position(1))]  # the interval had passed
    clock.now_ms = 5_500
    engine.process_records([record(2, b"a=1")])
    assert checkpointer.calls == [(SHARD, Position(1))]  # within the interval
    clock.now_ms = 9_000
    engine.process_records([])
    assert checkpointer.calls == [(SHARD, Position(1)), (SHARD, Position(2))]
    clock.now_ms = 12_000
    engine.process_records([])
    assert len(checkpointer.calls) == 2  # nothing new


def windowed_app(closed: list[tuple[str, int, int]]) -> App:
    app = App("windows")
    topic = app.topic("t", decoder=decode)
    hourly = (
        app.Table("hourly", default=int, value_type=int)
        .tumbling(1_000, grace_ms=100)
        .relative_to_field(lambda value: value[1])
    )

    @hourly.on_window_close
    def report(key: object, window: tuple[int, int], total: int) -> Iterable[object]:
        closed.append((str(key), window[0], total))
        yield ("window", key, window[0], total)

    @app.agent(topic)
    async def count(stream: Stream[tuple[str, int]]) -> AsyncIterator[object]:
        async for key, at_ms in stream:
            hourly[key] += 1
            yield ("seen", key, at_ms)

    return app


def test_a_window_closing_with_outputs_makes_a_checkpoint_due_at_once() -> None:
    # Reports are written when their window closes, not up to an interval later.
    closed: list[tuple[str, int, int]] = []
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, _ = build(windowed_app(closed), store, checkpointer, clock)
    clock.now_ms = 100  # the interval is 1,000 ms: not due by time
    engine.process_records([record(1, b"a=100")])
    assert checkpointer.calls == []
    engine.process_records([record(2, b"a=1200")])  # closes [0, 999]
    assert closed == [("a", 0, 1)]
    assert checkpointer.calls == [(SHARD, Position(2))]
    assert ("window", "a", 0, 1) in outputs(sink)
    engine.process_records([record(3, b"a=1300")])  # nothing closes: back to the interval
    assert checkpointer.calls == [(SHARD, Position(2))]


def test_late_records_are_dead_lettered_and_windows_close_once_by_watermark_or_idle() -> None:
    closed: list[tuple[str, int, int]] = []
    store, checkpointer, clock = InMemoryStateStore(), RecordingCheckpointer(), ManualClock()
    engine, sink, dead = build(windowed_app(closed), store, checkpointer, clock)
    engine.process_records([record(1, b"a=100"), record(2, b"a=900"), record(3, b"a=1200")])
    assert closed == [("a", 0, 2)]  # watermark 1200 - 100 passed the end of [0, 999]
    engine.process_records([record(4, b"a=50")])  # beyond grace for a closed window
    letters = list(dead.buffer.values())
    assert [(d.sequence_number, d.origin) for d in letters] == [(4, "late")]  # type: ignore[attr-defined]
    clock.now_ms = 20_000
    engine.process_records([], millis_behind_latest=0)
    assert closed == [("a", 0, 2), ("a", 1000, 1)]
    engine.process_records([], millis_behind_latest=0)
    engine.checkpoint.commit()
    windows = {o for o in outputs(sink) if isinstance(o, tuple) and o[0] == "window"}
    assert windows == {("window", "a", 0, 2), ("window", "a", 1000, 1)}
