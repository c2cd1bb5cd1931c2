"""The archive path without AWS: records as Firehose hands them to the archive's transformation
Lambda (infra/lambda/archive-format/index.py, run as is), the Lambda's output cut into
Firehose's buffers, GZIP'd and put into S3 under Firehose's key layout. For the archive-replay
benchmark and its integration test, against a moto server."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from core.records import Record
from streams.kinesis.reader import ShardReader, list_shards

LAMBDA = Path(__file__).resolve().parents[1] / "infra" / "lambda" / "archive-format" / "index.py"


def load_lambda() -> ModuleType:
    """The transformation Lambda's handler file, loaded as Lambda loads it."""
    spec = importlib.util.spec_from_file_location("archive_format_lambda", LAMBDA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIREHOSE_LAG_MS = 7
"""How much later Firehose's own arrival time is than Kinesis': the archive must keep the
Kinesis time (replay from a time selects by it), so the two differ here on purpose."""


def firehose_event(records: list[Record]) -> dict[str, Any]:
    """The transformation's input for `records` of a Kinesis source; record ids are the
    records' positions, eight digits."""
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:111111111111:deliverystream/archive",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:111111111111:stream/telemetry",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{i:08d}",
                "approximateArrivalTimestamp": r.arrival_ms + FIREHOSE_LAG_MS,
                "data": base64.b64encode(r.data).decode("ascii"),
                "kinesisRecordMetadata": {
                    "shardId": r.shard_id,
                    "partitionKey": r.partition_key,
                    "approximateArrivalTimestamp": r.arrival_ms,
                    "sequenceNumber": str(r.sequence_number),
                    "subsequenceNumber": r.sub_sequence_number,
                },
            }
            for i, r in enumerate(records)
        ],
    }


def firehose_key(prefix: str, first: Record, buffer: int) -> str:
    """Firehose's name for an object: the hour and the time of its oldest record, then
    <delivery stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>, and .gz for GZIP. Records sent in
    seconds fill what Firehose buffers for minutes: the i-th buffer is named i minutes on, as
    Firehose's buffers are named minutes apart."""
    at = datetime.fromtimestamp(first.arrival_ms / 1000 + 60 * buffer, UTC)
    return f"{prefix}{at:%Y/%m/%d/%H}/luxflow-archive-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"


def write_archive(
    s3: Any, bucket: str, prefix: str, records: list[Record], *, buffers: int = 3
) -> list[tuple[str, bytes]]:
    """Records in arrival order, cut into `buffers` Firehose buffers (each holding every
    shard's records of its time), each transformed by the Lambda, GZIP'd and put under
    Firehose's key layout. Returns (key, uncompressed body) per object."""
    handler = load_lambda().handler
    size = max(1, -(-len(records) // buffers))
    objects: list[tuple[str, bytes]] = []
    for start in range(0, len(records), size):
        buffer = records[start : start + size]
        result = handler(firehose_event(buffer), None)
        if {r["result"] for r in result["records"]} != {"Ok"}:
            raise RuntimeError("the archive-format Lambda failed records")
        body = b"".join(base64.b64decode(r["data"]) for r in result["records"])
        objects.append((firehose_key(prefix, buffer[0], len(objects)), body))
    for key, body in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body))
    return objects


def stream_records(kinesis: Any, stream: str) -> list[Record]:
    """Every record of the stream, as the local runner reads them, in arrival order: what
    Firehose reads from it."""
    records: list[Record] = []
    for shard in list_shards(kinesis, stream):
        reader = ShardReader(kinesis, stream, shard.shard_id, "TRIM_HORIZON", max_calls_per_s=50)
        while True:
            batch = reader.read()
            records.extend(batch.records)
            if not batch.records and batch.millis_behind_latest == 0:
                break
    return sorted(records, key=lambda r: (r.arrival_ms, r.shard_id, r.position))
