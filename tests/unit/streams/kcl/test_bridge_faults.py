"""The KCL bridge with the real engine under faults: a store that is down makes the bridge
hold processRecords (the daemon then delivers nothing more) with memory flat; a lost lease
means no checkpoint request ever again."""

from __future__ import annotations

import io

from core.clock import ManualClock
from core.records import Position
from core.retry import Backoff
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.kcl.bridge import DaemonBridge, DaemonChannel
from streams.processor import Checkpointer, EngineConfig
from tables.store import InMemoryStateStore
from tests.unit.streams.kcl.test_bridge import INIT, answer, request, status
from tests.unit.streams.test_engine_faults import app_with

SHARD = "shardId-000000000001"


def records_line(*seqs: int) -> bytes:
    """processRecords with one record `a=1` per sequence number."""
    body = ",".join(
        f'{{"data":"YT0x","partitionKey":"p","sequenceNumber":"{s}",'
        f'"approximateArrivalTimestamp":1000,"subSequenceNumber":0,"action":"record"}}'
        for s in seqs
    )
    return (
        b'{"action":"processRecords","records":[' + body.encode() + b'],"millisBehindLatest":0}\n'
    )


class Rig:
    def __init__(self, bound: int) -> None:
        self.clock = ManualClock()
        self.sink = InMemorySink()
        self.store = InMemoryStateStore()
        self.engines: list[ShardEngine] = []
        self.bound = bound
        self.sleeps: list[float] = []
        self.buffered_while_blocked: list[int] = []
        self.records_while_blocked: list[int] = []
        self.heal_after_sleeps = 0

    def factory(self, shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
        engine = ShardEngine(
            app_with([]),
            shard_id,
            sinks=[self.sink],
            dead_letter=InMemorySink(),
            state_store=self.store,
            checkpointer=checkpointer,
            config=EngineConfig(
                checkpoint_interval_ms=0, max_buffered_outputs=self.bound, retry_base_ms=100
            ),
            now_ms=self.clock,
        )
        self.engines.append(engine)
        return engine

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.buffered_while_blocked.append(len(self.sink.buffer))
        self.records_while_blocked.append(self.engines[0].counters.records)
        self.clock.now_ms += int(seconds * 1000) + 1
        if len(self.sleeps) >= self.heal_after_sleeps:
            self.sink.fail_flushes = 0

    def run(self, stdin: bytes) -> bytes:
        out = io.BytesIO()
        backoff = Backoff(base_ms=1, cap_ms=1, sleep=lambda _s: None)
        bridge = DaemonBridge(
            self.factory, DaemonChannel(io.BytesIO(stdin), out), backoff, sleep=self.sleep
        )
        bridge.run()
        return out.getvalue()


def test_a_store_down_holds_process_records_with_memory_flat_and_loses_nothing() -> None:
    rig = Rig(bound=3)
    rig.sink.fail_flushes = 10**6
    rig.heal_after_sleeps = 5
    out = rig.run(
        INIT
        + records_line(1, 2)
        + records_line(3, 4)
        + records_line(5, 6)
        + answer("4")
        # the store is back: records 5 and 6 are taken, then checkpointed
        + answer("6")
    )
    assert out == (
        status("initialize")
        + status("processRecords")
        + status("processRecords")
        + request(4)
        + request(6)
        + status("processRecords")
    )
    assert len(rig.sleeps) == 5  # the third batch waited, unanswered, with backoff
    assert set(rig.records_while_blocked) == {4}  # records 5 and 6 were not taken meanwhile
    assert max(rig.buffered_while_blocked) <= 4  # the bound (3) plus the last batch taken
    assert set(rig.sink.stored.values()) == {("total", "a", n) for n in range(1, 7)}
    snapshot = rig.store.load(SHARD)
    assert snapshot is not None and snapshot.position == Position(6)


def test_after_the_daemon_reports_the_lease_gone_no_checkpoint_is_ever_asked_again() -> None:
    rig = Rig(bound=1_000)
    out = rig.run(
        INIT
        + records_line(1)
        + answer("1", "ShutdownException")
        + records_line(2)
        + b'{"action":"shutdownRequested"}\n'
        + b'{"action":"shardEnded"}\n'
    )
    assert out == (
        status("initialize")
        + request(1)
        + status("processRecords")
        + status("processRecords")
        + status("shutdownRequested")
        + status("shardEnded")
    )
    (engine,) = rig.engines
    assert engine.health.status == "lease_lost"
    assert engine.counters.records == 1  # record 2 went nowhere
