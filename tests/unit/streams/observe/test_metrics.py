"""Metrics aggregation, EMF lines, readiness, log filters and the KCL processor's status
files, without network."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from core.clock import ManualClock
from core.logs import JsonFormatter, PayloadFilter, RepeatFilter
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.kcl.bridge import run_processor
from streams.kcl.status import StatusDirectory, StatusReporter
from streams.observe.emf import emf_line
from streams.observe.metrics import FAILED, RELEASED, RUNNING, Metrics, ShardStatus, WorkerStatus
from streams.processor import Checkpointer, EngineConfig
from streams.stream import Stream
from tables.store import InMemoryStateStore

SHARD = "shardId-000000000001"


def shard(**fields: object) -> ShardStatus:
    return ShardStatus(**{"shard_id": SHARD, "generation": "g1", **fields})  # type: ignore[arg-type]


def test_counters_become_increases_and_a_new_engine_restarts_them() -> None:
    clock = ManualClock(1_000_000)
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=clock)
    metrics.update(WorkerStatus([shard(records_read=10, dead_letters={"decode": 2})]))
    metrics.update(WorkerStatus([shard(records_read=25, dead_letters={"decode": 3})]))
    first = {line.dims: line.values for line in metrics.take_flush()}
    assert first[(("Shard", SHARD),)]["RecordsRead"] == 25
    assert first[(("Shard", SHARD),)]["DeadLetters"] == 3
    assert first[(("Reason", "decode"), ("Shard", SHARD))] == {"DeadLetters": 3}
    # A rebuilt engine (new generation) counts from 0 again: its 4 are new records.
    metrics.update(WorkerStatus([shard(generation="g2", records_read=4)]))
    second = {line.dims: line.values for line in metrics.take_flush()}
    assert second[(("Shard", SHARD),)]["RecordsRead"] == 4
    assert second[(("Shard", SHARD),)]["DeadLetters"] == 0  # zeros keep alarms fed
    assert metrics.totals[("RecordsRead", (("Shard", SHARD),))] == 29


def test_checkpoint_age_grows_while_work_waits_and_is_zero_when_idle_and_caught_up() -> None:
    clock = ManualClock(1_000_000)
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=clock)
    metrics.update(WorkerStatus([shard(pending=True)]))
    clock.now_ms += 2_000
    metrics.update(WorkerStatus([shard(pending=True)]))
    assert metrics.readiness().ready
    clock.now_ms += 2_000
    metrics.update(WorkerStatus([shard(pending=True, phase=FAILED, error="sink")]))
    readiness = metrics.readiness()
    assert not readiness.ready
    assert readiness.checkpoint_age_ms == {SHARD: 4_000}
    # A checkpoint written a second ago: ready again.
    clock.now_ms += 1_000
    metrics.update(WorkerStatus([shard(pending=True, last_checkpoint_ms=clock.now_ms - 1_000)]))
    assert metrics.readiness().checkpoint_age_ms == {SHARD: 1_000}
    clock.now_ms += 10_000
    metrics.update(WorkerStatus([shard(pending=False, caught_up=True)]))
    assert metrics.readiness().checkpoint_age_ms == {SHARD: 0}
    # A shard given up no longer counts.
    metrics.update(WorkerStatus([shard(phase=RELEASED, pending=True)]))
    assert metrics.readiness().ready
    assert metrics.readiness().checkpoint_age_ms == {}


def test_an_emf_line_names_namespace_dimensions_units_and_values() -> None:
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=ManualClock(1_000_000))
    metrics.update(WorkerStatus([shard(records_read=7, millis_behind=250)], lease_losses=1))
    lines = metrics.take_flush()
    documents = [json.loads(emf_line("app-1", "w-1", line, 123)) for line in lines]
    by_dims = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in documents}
    shard_line = by_dims[("App", "Shard")]
    directive = shard_line["_aws"]["CloudWatchMetrics"][0]
    assert shard_line["_aws"]["Timestamp"] == 123
    assert directive["Namespace"] == "Luxflow"
    assert directive["Dimensions"] == [["App", "Shard"], ["App"]]
    assert {"Name": "MillisBehindLatest", "Unit": "Milliseconds"} in directive["Metrics"]
    assert (shard_line["App"], shard_line["Shard"], shard_line["RecordsRead"]) == (
        "app-1",
        SHARD,
        7,
    )
    assert shard_line["MillisBehindLatest"] == 250
    assert by_dims[("App",)]["LeaseLosses"] == 1
    assert by_dims[("App",)]["ShardsHeld"] == 1


def log_record(msg: str, level: int = logging.ERROR, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("luxflow.x", level, __file__, 1, msg, ("a",), None)
    record.threadName = f"shard-{SHARD}"
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_repeated_errors_are_rate_limited_with_a_count() -> None:
    now = ManualClock()
    repeat = RepeatFilter(60_000, now)
    passed = [repeat.filter(log_record("sink failed: %s")) for _ in range(5)]
    assert passed == [True, False, False, False, False]
    assert repeat.filter(log_record("other: %s"))
    assert repeat.filter(log_record("sink failed: %s", logging.INFO))  # info is not limited
    now.now_ms = 60_000
    record = log_record("sink failed: %s")
    assert repeat.filter(record)
    assert record.getMessage() == "sink failed: a (4 similar suppressed)"
    assert record.suppressed == 4  # type: ignore[attr-defined]


def test_json_lines_carry_shard_sequence_and_reason_but_no_payload_by_default() -> None:
    record = log_record("bad record %s", sequence_number=42, reason="decode", payload=b"secret")
    assert PayloadFilter(allow=False).filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR"
    assert line["logger"] == "luxflow.x"
    assert line["message"] == "bad record a"
    assert (line["shard"], line["sequence_number"], line["reason"]) == (SHARD, 42, "decode")
    assert "payload" not in line
    assert line["time"].endswith("Z")
    allowed = log_record("bad record %s", payload=b"secret")
    PayloadFilter(allow=True).filter(allowed)
    assert "secret" in json.loads(JsonFormatter().format(allowed))["payload"]


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
