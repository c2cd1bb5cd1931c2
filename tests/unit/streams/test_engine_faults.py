"""The engine under faults: poison records, failing stores, lost leases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from core.clock import ManualClock
from core.errors import LeaseLostError, ShardBlockedError
from core.records import SHARD_END, DeadLetter, Position, Record
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.stream import Stream
from streams.testing import AgentTestContext, RecordingCheckpointer
from tables.shard import ShardState

SHARD = "shardId-000000000000"


def decode(data: bytes, _arrival_ms: int) -> tuple[str, int]:
    """key=value; `deep` recurses without end, `type`/`key`/`big` raise what real decoders
    raise on hostile input (not ValueError)."""
    key, _, value = data.decode().partition("=")
    if key == "deep":

        def nest(n: int) -> int:
            return nest(n + 1) + 1

        nest(0)
    if key == "type":
        raise TypeError("unhashable type: 'list'")
    if key == "key":
        raise KeyError("asset_id")
    if key == "big":
        raise OverflowError("int too large to convert")
    if not value.isdigit():
        raise ValueError(f"bad value {value!r}")
    return key, int(value)


def app_with(callback_fails: list[bool]) -> App:
    app = App("faults")
    topic = app.topic("t", decoder=decode)
    totals = app.Table("totals", default=int, value_type=int)
    windows = (
        app.Table("windows", default=int, value_type=int)
        .tumbling(1_000, grace_ms=0)
        .relative_to_field(lambda value: value[1])
    )

    @windows.on_window_close
    def closed(key: object, _window: tuple[int, int], _total: int) -> Iterable[object]:
        if key == "w":
            raise LookupError("window callback bug")
        return ()

    @app.agent(topic)
    async def count(stream: Stream[tuple[str, int]]) -> AsyncIterator[object]:
        async for key, value in stream:
            if key == "boom":
                raise RuntimeError("agent bug")
            totals[key] += value
            windows[key] += 1
            yield ("total", key, totals[key])

    @app.on_advance
    def advance(_clock_ms: int) -> Iterable[object]:
        if callback_fails and callback_fails.pop():
            raise ZeroDivisionError("callback bug")
        return ()

    return app


def build(
    *, bound: int = 1_000, fails: list[bool] | None = None
) -> tuple[ShardEngine, InMemorySink, InMemorySink, RecordingCheckpointer, ManualClock]:
    ctx = AgentTestContext(
        app_with(fails if fails is not None else []),
        shard_id=SHARD,
        now_ms=0,
        config=EngineConfig(
            checkpoint_interval_ms=1_000,
            idle_timeout_ms=10_000,
            max_buffered_outputs=bound,
            retry_base_ms=1_000,
            retry_cap_ms=8_000,
        ),
    )
    return ctx.engine, ctx.sink, ctx.dead_letter_sink, ctx.checkpointer, ctx.clock


def rec(seq: int, data: bytes) -> Record:
    return Record(SHARD, seq, 0, "site-1", data, 1_000 + seq)


def letters(dead: InMemorySink) -> list[tuple[int, str, str]]:
    found = {d for d in [*dead.buffer.values(), *dead.stored.values()] if isinstance(d, DeadLetter)}
    return sorted(
        {
            (d.sequence_number, d.origin, d.reason.split(":")[1] if ":" in d.reason else d.reason)
            for d in found
        }
    )


def test_every_poison_class_is_dead_lettered_with_a_stable_reason_and_the_shard_goes_on() -> None:
    engine, sink, dead, checkpointer, clock = build()
    engine.process_records(
        [
            rec(1, b"a=1"),
            rec(2, b"deep=1"),
            rec(3, b"type=1"),
            rec(4, b"key=1"),
            rec(5, b"big=1"),
            rec(6, b"boom=1"),
            rec(7, b"a=x"),
            rec(8, b"a=2"),
        ]
    )
    clock.now_ms = 1_000
    engine.process_records([])
    assert set(sink.stored.values()) == {("total", "a", 1), ("total", "a", 3)}
    assert letters(dead) == [
        (2, "decode", "RecursionError"),
        (3, "decode", "TypeError"),
        (4, "decode", "KeyError"),
        (5, "decode", "OverflowError"),
        (6, "agent", "RuntimeError"),
        (7, "decode", "bad value 'x'"),  # a ValueError's reason is the decoder's own
    ]
    reason = next(d.reason for d in dead.stored.values() if isinstance(d, DeadLetter))
    assert reason.startswith("internal_error:") and " at " in reason and len(reason) < 300
    assert checkpointer.positions == {SHARD: Position(8)}
    assert engine.health.healthy and engine.health.checkpoints == 1


def test_a_callback_that_raises_is_dead_lettered_and_the_shard_goes_on() -> None:
    engine, sink, dead, checkpointer, clock = build(fails=[False, True])
    engine.process_records([rec(1, b"a=1")])  # the advance callback raises
    engine.process_records([rec(2, b"w=10")])
    engine.process_records([rec(3, b"a=5000")])  # closes w's window: its callback raises
    clock.now_ms = 1_000
    engine.process_records([])
    assert letters(dead) == [(1, "callback", "ZeroDivisionError"), (3, "callback", "LookupError")]
    assert set(sink.stored.values()) == {
        ("total", "a", 1),
        ("total", "w", 10),
        ("total", "a", 5001),
    }
    assert checkpointer.positions == {SHARD: Position(3)}


def test_a_store_that_keeps_failing_backs_off_reports_unhealthy_and_blocks_when_full() -> None:
    engine, sink, _, checkpointer, clock = build(bound=3)
    sink.fail_flushes = 10**6
    engine.process_records([rec(1, b"a=1"), rec(2, b"a=1")])
    clock.now_ms = 1_000
    engine.process_records([rec(3, b"a=1")])  # due: the checkpoint fails
    assert engine.health.consecutive_failures == 1 and not engine.health.healthy
    assert engine.health.last_error is not None and "SinkError" in engine.health.last_error
    flushes = sink.flushes + sink.fail_flushes
    engine.process_records([rec(4, b"a=1")])  # over the bound now; retry pause not over
    assert sink.flushes + sink.fail_flushes == flushes  # no retry before the pause: no tight loop
    with pytest.raises(ShardBlockedError) as blocked:
        engine.process_records([rec(5, b"a=1")])
    assert 0 <= blocked.value.retry_in_ms <= 2_000
    assert engine.counters.records == 4  # record 5 was not taken
    assert engine.health.status == "blocked"
    # Pauses grow (capped): many failures later, still refusing, memory flat.
    for _ in range(20):
        clock.now_ms += 10_000
        with pytest.raises(ShardBlockedError) as blocked:
            engine.process_records([rec(5, b"a=1")])
        assert blocked.value.retry_in_ms <= 8_000
    assert len(sink.buffer) <= 4 and engine.counters.records == 4
    assert checkpointer.positions == {}
    # The store is back: the same batch is taken, everything lands, checkpoint moves.
    sink.fail_flushes = 0
    clock.now_ms += 10_000
    engine.process_records([rec(5, b"a=1")])
    clock.now_ms += 1_000
    engine.process_records([])
    assert ("total", "a", 5) in set(sink.stored.values())
    assert checkpointer.positions == {SHARD: Position(5)}
    assert engine.health.healthy


def test_after_the_lease_is_lost_nothing_is_written_and_the_checkpointer_is_never_called() -> None:
    engine, sink, dead, checkpointer, clock = build()
    engine.process_records([rec(1, b"a=1"), rec(2, b"x")])
    checkpointer.lose(SHARD)
    clock.now_ms = 1_000
    with pytest.raises(LeaseLostError):
        engine.process_records([rec(3, b"a=1")])
    assert checkpointer.calls == []  # found out from the fence, before any write
    assert sink.stored == {} and sink.buffer == {} and dead.buffer == {}
    assert engine.health.status == "lease_lost"
    engine.process_records([rec(4, b"a=1")])  # ignored
    engine.shutdown_requested()
    engine.shard_ended()
    with pytest.raises(LeaseLostError):
        engine.checkpoint.commit()
    assert checkpointer.calls == [] and sink.stored == {} and sink.buffer == {}


def test_a_lease_lost_at_the_checkpoint_write_drops_the_buffers() -> None:
    engine, sink, _, checkpointer, clock = build()
    engine.process_records([rec(1, b"a=1")])

    def lost(shard_id: str, position: Position | str) -> None:
        raise LeaseLostError("counter moved")

    checkpointer.checkpoint = lost  # type: ignore[method-assign]
    clock.now_ms = 1_000
    with pytest.raises(LeaseLostError):
        engine.process_records([])
    engine.shard_ended()  # ignored: no SHARD_END after a lost lease
    assert sink.buffer == {}
    assert checkpointer.positions == {} and SHARD_END not in checkpointer.positions.values()


def test_a_key_an_advance_callback_rewrites_stays_with_its_own_records_at_a_split() -> None:
    """A sweep rewrites site-1's key after a site-2 record came last: a split still gives the
    key to the child that gets site-1's records (not to whichever record came last)."""
    app = App("sweep")
    topic = app.topic("t", decoder=decode)
    states = app.Table("states", default=int, value_type=int)
    # A windowed table gives the shard its event clock, which advance callbacks run on.
    seen = (
        app.Table("seen", default=int, value_type=int)
        .tumbling(1_000, grace_ms=0)
        .relative_to_field(lambda value: value[1])
    )

    @app.agent(topic)
    async def keep(stream: Stream[tuple[str, int]]) -> AsyncIterator[object]:
        async for key, value in stream:
            states[key] = value
            seen[key] += 1
            yield ("state", key, value)

    @app.on_advance
    def sweep(_clock_ms: int) -> Iterable[object]:
        if states.get("a") == 1:
            states["a"] = 2  # e.g. an asset found offline: its state changes with no record
        return ()

    engine = AgentTestContext(app, shard_id=SHARD, now_ms=0).engine
    engine.process_records(
        [Record(SHARD, 1, 0, "site-1", b"a=1", 1_000), Record(SHARD, 2, 0, "site-2", b"b=1", 1_001)]
    )
    snapshot = engine.state.snapshot(full=True)
    assert snapshot is not None
    children: dict[str, dict[object, int]] = {}
    for site in ("site-1", "site-2"):
        child = ShardState(app.tables, f"child-{site}", ManualClock(), 10_000)
        child.restore([[snapshot.data]], lambda pk, site=site: pk == site)  # type: ignore[misc]
        child.activate()
        children[site] = dict(states.items())
    assert children == {"site-1": {"a": 2}, "site-2": {"b": 1}}
