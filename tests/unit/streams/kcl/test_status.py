"""The KCL processor's status files: it reports through a file, and stdout stays the protocol's."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.kcl.bridge import run_processor
from streams.kcl.status import StatusDirectory, StatusReporter
from streams.observe.metrics import RELEASED, RUNNING
from streams.processor import Checkpointer, EngineConfig
from streams.stream import Stream
from tables.store import InMemoryStateStore

SHARD = "shardId-000000000001"


def counting_engine(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
    app = App("t")
    topic = app.topic("t", decoder=lambda data, _ms: int(data))
    totals = app.Table("totals", default=int, value_type=int)

    @app.agent(topic)
    async def count(stream: Stream[int]) -> AsyncIterator[object]:
        async for value in stream:
            totals["all"] += value
            yield ("total", totals["all"])

    return ShardEngine(
        app,
        shard_id,
        sinks=[InMemorySink()],
        dead_letter=InMemorySink(),
        state_store=InMemoryStateStore(),
        checkpointer=checkpointer,
        config=EngineConfig(checkpoint_interval_ms=0),
    )


def test_kcl_processor_reports_through_a_file_and_stdout_stays_protocol(tmp_path: Path) -> None:
    records = ",".join(
        f'{{"data":"{d}","partitionKey":"p","sequenceNumber":"{n}",'
        f'"approximateArrivalTimestamp":1000,"subSequenceNumber":0,"action":"record"}}'
        for n, d in ((1, "MQ=="), (2, "eA=="), (3, "Mw=="))  # "1", "x" (undecodable), "3"
    )
    stdin = io.BytesIO(
        b'{"action":"initialize","shardId":"' + SHARD.encode() + b'",'
        b'"sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}\n'
        b'{"action":"processRecords","records":[' + records.encode() + b"],"
        b'"millisBehindLatest":1500}\n'
        b'{"action":"checkpoint","sequenceNumber":"3","subSequenceNumber":0,"error":null}\n'
        b'{"action":"shutdownRequested"}\n'
    )
    stdout = io.BytesIO()
    reporter = StatusReporter(tmp_path, min_interval_ms=0)
    code = run_processor(
        reporter.engine_factory(counting_engine), stdin, stdout, observer=reporter.observe
    )
    assert code == 0
    # Every byte on stdout is the protocol's, nothing else.
    assert stdout.getvalue() == (
        b'{"action":"status","responseFor":"initialize"}\n'
        b'{"action":"checkpoint","sequenceNumber":"3","subSequenceNumber":0}\n'
        b'{"action":"status","responseFor":"processRecords"}\n'
        b'{"action":"status","responseFor":"shutdownRequested"}\n'
    )
    status = StatusDirectory(tmp_path, alive=lambda _pid: True).read()
    (only,) = status.shards
    assert (only.shard_id, only.phase) == (SHARD, RELEASED)
    assert (only.records_read, only.records_processed, only.checkpoints) == (3, 2, 1)
    assert only.dead_letters == {} and only.millis_behind == 1500
    # A processor that is gone no longer counts as running.
    running = tmp_path / "other.json"
    running.write_bytes(
        (tmp_path / f"{SHARD}.json").read_bytes().replace(b'"released"', b'"running"')
    )
    gone = StatusDirectory(tmp_path, alive=lambda _pid: False).read()
    assert {s.phase for s in gone.shards} == {RELEASED}
    assert RUNNING in {
        s.phase for s in StatusDirectory(tmp_path, alive=lambda _pid: True).read().shards
    }
