"""The shard processor's conversation with the daemon, byte for byte, with a scripted engine.

The daemon's side is a prepared stdin (its messages and its answers to our checkpoint
requests, in the order the real daemon sends them); our side is what lands on stdout.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest

from core.errors import CheckpointError, LeaseLostError, SinkError
from core.records import SHARD_END, Position, Record
from core.retry import Backoff
from streams.kcl.bridge import DaemonChannel, DaemonCheckpointer, run_processor
from streams.processor import Checkpointer, Lineage, ShardHealth

SHARD = "shardId-000000000001"
INIT = (
    b'{"action":"initialize","shardId":"shardId-000000000001",'
    b'"sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}\n'
)


def records_line(*seqs: int) -> bytes:
    body = ",".join(
        f'{{"data":"eA==","partitionKey":"p","sequenceNumber":"{s}",'
        f'"approximateArrivalTimestamp":1000,"subSequenceNumber":0,"action":"record"}}'
        for s in seqs
    )
    return (
        b'{"action":"processRecords","records":[' + body.encode() + b'],"millisBehindLatest":0}\n'
    )


def answer(seq: str | None, error: str | None = None) -> bytes:
    seq_json = "null" if seq is None else f'"{seq}"'
    sub_json = "null" if seq is None else "0"
    err_json = "null" if error is None else f'"{error}"'
    return (
        f'{{"action":"checkpoint","sequenceNumber":{seq_json},'
        f'"subSequenceNumber":{sub_json},"error":{err_json}}}\n'
    ).encode()


def status(action: str) -> bytes:
    return b'{"action":"status","responseFor":"' + action.encode() + b'"}\n'


def request(seq: int | None) -> bytes:
    if seq is None:
        return b'{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}\n'
    return b'{"action":"checkpoint","sequenceNumber":"%d","subSequenceNumber":0}\n' % seq


class ScriptedEngine:
    """A `ShardProcessor` that records every call; checkpoints when told to, through the real
    checkpointer (a failed checkpoint is kept for later, as the engine does)."""

    def __init__(self, shard_id: str, checkpointer: Checkpointer) -> None:
        self.shard_id = shard_id
        self.health = ShardHealth(shard_id)
        self.checkpointer = checkpointer
        self.calls: list[object] = []
        self.due = False
        self.fail_next_checkpoint: Exception | None = None
        self.last: Position | None = None

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        self.calls.append("start")

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        if records:
            self.calls.append(("process", [r.sequence_number for r in records]))
            self.last = records[-1].position
        else:
            self.calls.append("tick")
        if self.due and self.last is not None:
            self.calls.append(("checkpoint", self.last))
            error, self.fail_next_checkpoint = self.fail_next_checkpoint, None
            if error is not None:
                return
            self.checkpointer.checkpoint(self.shard_id, self.last)
            self.due = False

    def shard_ended(self) -> None:
        self.calls.append("shard_ended")
        self.checkpointer.checkpoint(self.shard_id, SHARD_END)

    def lease_lost(self) -> None:
        self.calls.append("lease_lost")

    def shutdown_requested(self) -> None:
        self.calls.append("shutdown_requested")
        if self.last is not None:
            self.checkpointer.checkpoint(self.shard_id, self.last)


class Factory:
    def __init__(self, due: bool = False) -> None:
        self.engines: list[ScriptedEngine] = []
        self.due = due

    def __call__(self, shard_id: str, checkpointer: Checkpointer) -> ScriptedEngine:
        engine = ScriptedEngine(shard_id, checkpointer)
        engine.due = self.due
        self.engines.append(engine)
        return engine


def run(stdin: bytes, factory: Factory) -> bytes:
    out = io.BytesIO()
    code = run_processor(factory, io.BytesIO(stdin), out, backoff=no_sleep_backoff())
    assert code == 0
    return out.getvalue()


def no_sleep_backoff(max_attempts: int = 3) -> Backoff:
    return Backoff(base_ms=1, cap_ms=1, max_attempts=max_attempts, sleep=lambda _s: None)


def test_every_message_is_answered_with_its_status() -> None:
    factory = Factory()
    out = run(
        INIT + records_line(1, 2) + b'{"action":"processRecords","records":[]}\n'
        b'{"action":"leaseLost"}\n',
        factory,
    )
    assert out == (
        status("initialize")
        + status("processRecords")
        + status("processRecords")
        + status("leaseLost")
    )
    (engine,) = factory.engines
    assert engine.shard_id == SHARD
    assert engine.calls == ["start", ("process", [1, 2]), "tick", "lease_lost"]


def test_due_checkpoint_is_sent_and_answered_before_the_status() -> None:
    factory = Factory(due=True)
    out = run(INIT + records_line(5, 9) + answer("9"), factory)
    assert out == status("initialize") + request(9) + status("processRecords")
    assert factory.engines[0].calls[-1] == ("checkpoint", Position(9, 0))


def test_shard_ended_checkpoints_with_a_null_sequence_number() -> None:
    factory = Factory()
    out = run(INIT + records_line(3) + b'{"action":"shardEnded"}\n' + answer(None), factory)
    assert out == (
        status("initialize") + status("processRecords") + request(None) + status("shardEnded")
    )


def test_shutdown_requested_checkpoints_the_last_record() -> None:
    factory = Factory()
    out = run(
        INIT
        + records_line(3, 4)
        + b'{"action":"shutdownRequested"}\n'
        + answer("4")
        + b'{"action":"leaseLost"}\n',
        factory,
    )
    assert out == (
        status("initialize")
        + status("processRecords")
        + request(4)
        + status("shutdownRequested")
        + status("leaseLost")
    )
    assert factory.engines[0].calls[-2:] == ["shutdown_requested", "lease_lost"]


def test_throttled_checkpoint_is_retried() -> None:
    factory = Factory(due=True)
    out = run(INIT + records_line(7) + answer("7", "ThrottlingException") + answer("7"), factory)
    assert out == status("initialize") + request(7) + request(7) + status("processRecords")


def test_shutdown_exception_drops_the_engine_and_later_records() -> None:
    factory = Factory(due=True)
    out = run(
        INIT
        + records_line(7)
        + answer("7", "ShutdownException")
        + records_line(8)
        + b'{"action":"leaseLost"}\n',
        factory,
    )
    assert out == (
        status("initialize")
        + request(7)
        + status("processRecords")
        + status("processRecords")
        + status("leaseLost")
    )
    engine = factory.engines[0]
    assert engine.calls == ["start", ("process", [7]), ("checkpoint", Position(7, 0)), "lease_lost"]


def test_failed_periodic_checkpoint_is_logged_and_retried_at_the_next_due_one() -> None:
    factory = Factory(due=True)

    def make(shard_id: str, checkpointer: Checkpointer) -> ScriptedEngine:
        engine = factory(shard_id, checkpointer)
        engine.fail_next_checkpoint = SinkError("dynamodb down")
        return engine

    out = io.BytesIO()
    stdin = io.BytesIO(INIT + records_line(1) + records_line(2) + answer("2"))
    assert run_processor(make, stdin, out, backoff=no_sleep_backoff()) == 0
    assert out.getvalue() == (
        status("initialize") + status("processRecords") + request(2) + status("processRecords")
    )
    assert [
        c for c in factory.engines[0].calls if isinstance(c, tuple) and c[0] == "checkpoint"
    ] == [
        ("checkpoint", Position(1, 0)),
        ("checkpoint", Position(2, 0)),
    ]


def test_a_line_that_is_not_a_message_ends_the_processor_with_code_2() -> None:
    out = io.BytesIO()
    code = run_processor(Factory(), io.BytesIO(INIT + b"garbage\n"), out)
    assert code == 2
    assert out.getvalue() == status("initialize")


def test_blank_lines_are_ignored() -> None:
    assert run(b"\n" + INIT + b"\n\n", Factory()) == status("initialize")


def checkpointer(
    daemon_answers: bytes, max_attempts: int = 3
) -> tuple[DaemonCheckpointer, io.BytesIO]:
    out = io.BytesIO()
    channel = DaemonChannel(io.BytesIO(daemon_answers), out)
    return DaemonCheckpointer(channel, SHARD, no_sleep_backoff(max_attempts)), out


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        ("ShutdownException", LeaseLostError),
        ("InvalidStateException", CheckpointError),
        ("IllegalArgumentException", CheckpointError),
    ],
)
def test_checkpoint_errors_translate(error: str, raised: type[Exception]) -> None:
    cp, out = checkpointer(answer("5", error))
    with pytest.raises(raised):
        cp.checkpoint(SHARD, Position(5))
    assert out.getvalue() == request(5)


def test_throttling_past_the_attempts_is_a_checkpoint_error() -> None:
    cp, out = checkpointer(answer("5", "ThrottlingException") * 2, max_attempts=2)
    with pytest.raises(CheckpointError, match="ThrottlingException"):
        cp.checkpoint(SHARD, Position(5))
    assert out.getvalue() == request(5) * 2


def test_dependency_errors_are_retried() -> None:
    cp, out = checkpointer(answer("5", "KinesisClientLibDependencyException") + answer("5"))
    cp.checkpoint(SHARD, Position(5))
    assert out.getvalue() == request(5) * 2


def test_checkpoint_refuses_other_shards_and_sentinels() -> None:
    cp, out = checkpointer(b"")
    with pytest.raises(CheckpointError):
        cp.checkpoint("shardId-000000000009", Position(5))
    with pytest.raises(CheckpointError):
        cp.checkpoint(SHARD, "TRIM_HORIZON")
    assert out.getvalue() == b""


def test_daemon_gone_while_waiting_is_a_checkpoint_error() -> None:
    cp, _ = checkpointer(b"")
    with pytest.raises(CheckpointError):
        cp.checkpoint(SHARD, Position(5))
