"""End to end through emulated Kinesis (moto server on 127.0.0.1): luxflow's consumption rate
against the emulator's raw GetRecords read rate, on the same stream.

- raw: a plain boto3 loop, GetShardIterator(TRIM_HORIZON) then GetRecords(Limit=10000) until
  every record was read; boto3's default response parsing, nothing done with the records.
- luxflow: the local runner's `ShardReader` (its msgspec GetRecords parser, no call-rate
  pause) feeding a `ShardEngine` with the real app and the in-memory-client sinks, until every
  record was processed, then a final checkpoint.

Both are wall-clock rates (the emulator is another process on this machine); the two are run
alternately `repeat` times and the best of each is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import RequestCounters, build_engine
from core.clock import ManualClock
from core.records import TRIM_HORIZON, Record
from streams.app import App
from streams.kinesis.reader import ShardReader

STREAM = "luxflow-bench"


@dataclass(frozen=True)
class E2EResult:
    records: int
    raw_records_per_s: float | None
    luxflow_records_per_s: float | None
    error: str | None

    @property
    def ratio(self) -> float | None:
        if self.raw_records_per_s and self.luxflow_records_per_s:
            return self.luxflow_records_per_s / self.raw_records_per_s
        return None


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _put_all(client: Any, records: Sequence[Record]) -> str:
    client.create_stream(StreamName=STREAM, ShardCount=1)
    client.get_waiter("stream_exists").wait(
        StreamName=STREAM, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    for lo in range(0, len(records), 500):
        entries = [
            {"Data": r.data, "PartitionKey": r.partition_key} for r in records[lo : lo + 500]
        ]
        response = client.put_records(StreamName=STREAM, Records=entries)
        if response.get("FailedRecordCount"):
            raise RuntimeError("the emulator refused part of a PutRecords batch")
    shard_id: str = client.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    return shard_id


def _raw_read(endpoint: str, shard_id: str, expected: int) -> float:
    client = _client(endpoint)
    start = time.perf_counter()
    iterator = client.get_shard_iterator(
        StreamName=STREAM, ShardId=shard_id, ShardIteratorType=TRIM_HORIZON
    )["ShardIterator"]
    seen = 0
    while seen < expected:
        response = client.get_records(ShardIterator=iterator, Limit=10_000)
        seen += len(response["Records"])
        iterator = response["NextShardIterator"]
        if not response["Records"] and response.get("MillisBehindLatest") == 0:
            raise RuntimeError(f"raw read stopped at {seen} of {expected} records")
    return seen / (time.perf_counter() - start)


def _luxflow_read(
    endpoint: str, shard_id: str, expected: int, build_app: Callable[[], App], now_ms: int
) -> float:
    client = _client(endpoint)
    engine = build_engine(build_app(), shard_id, RequestCounters(), ManualClock(now_ms))
    engine.initialize(TRIM_HORIZON)
    start = time.perf_counter()
    reader = ShardReader(client, STREAM, shard_id, TRIM_HORIZON, max_calls_per_s=1e9)
    while engine.counters.records < expected:
        batch = reader.read()
        if batch.records:
            engine.process_records(batch.records)
        elif batch.millis_behind_latest == 0:
            raise RuntimeError(f"luxflow read stopped at {engine.counters.records} records")
    engine.checkpoint.commit()
    return engine.counters.records / (time.perf_counter() - start)


def run_e2e(
    build_app: Callable[[], App], records: Sequence[Record], *, repeat: int = 2
) -> E2EResult:
    try:
        from emulators.moto import MotoServer
    except Exception as exc:
        return E2EResult(len(records), None, None, f"emulator unavailable: {exc!r}")
    now_ms = records[0].arrival_ms if records else 0
    try:
        with MotoServer() as server:
            shard_id = _put_all(_client(server.endpoint), records)
            raw: list[float] = []
            lux: list[float] = []
            for _ in range(repeat):
                raw.append(_raw_read(server.endpoint, shard_id, len(records)))
                lux.append(
                    _luxflow_read(server.endpoint, shard_id, len(records), build_app, now_ms)
                )
    except Exception as exc:
        return E2EResult(len(records), None, None, f"emulated Kinesis failed: {exc!r}")
    return E2EResult(len(records), max(raw), max(lux), None)
