"""`luxflow replay --archive` over real HTTP (moto server: Kinesis, DynamoDB, Timestream, S3):
the archive written as the archive path writes it (the Firehose transformation Lambda run on
the records as Firehose hands them over, GZIP objects under Firehose's key layout, one object
per buffer with every shard's records) replays into a fresh deployment the same command-model
items and Timestream records as a replay of the same records from the stream.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.records import Record
from streams.kinesis.reader import ShardReader, list_shards
from tests.support.deployment import Deployment, recent_params

pytestmark = pytest.mark.integration

LAMBDA = Path(__file__).parents[2] / "infra" / "lambda" / "archive-format" / "index.py"
PARAMS: dict[str, Any] = {"sites": 2, "hours": 2}
MALFORMED = b'{"v":1,"shard":"shardId-000000000000","seq":"12x","sub":0}'


def load_lambda() -> ModuleType:
    spec = importlib.util.spec_from_file_location("archive_format_lambda", LAMBDA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class StreamReplay:
    records: list[Record]
    items: list[dict[str, Any]]
    query_model: dict[Any, Any]


def stream_records(deployment: Deployment) -> list[Record]:
    """Every record of the stream, as the local runner reads them, in arrival order."""
    client = deployment.aws("kinesis")
    stream = deployment.env["LUXFLOW_STREAM"]
    records: list[Record] = []
    for shard in list_shards(client, stream):
        reader = ShardReader(client, stream, shard.shard_id, "TRIM_HORIZON", max_calls_per_s=50)
        while True:
            batch = reader.read()
            records.extend(batch.records)
            if not batch.records and batch.millis_behind_latest == 0:
                break
    return sorted(records, key=lambda r: (r.arrival_ms, r.shard_id, r.position))


@pytest.fixture(scope="module")
def from_the_stream(
    moto_endpoint: str, aws: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory
) -> StreamReplay:
    """A straight run, then `luxflow replay --from trim-horizon --run`: what it leaves."""
    deployment = Deployment(
        moto_endpoint, aws, f"ra{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("stream")
    )
    deployment.setup(shards=2)
    simulation, _ = deployment.simulation(recent_params(**PARAMS))
    sent = list(simulation.records())
    deployment.send(sent)
    assert deployment.run_worker_until_idle() == len(sent)
    deployment.luxflow("replay", "--from", "trim-horizon", "--yes", "--run", "--progress-s", "60")
    records = stream_records(deployment)
    assert len(records) == len(sent) and len({r.shard_id for r in records}) == 2
    items = deployment.items()
    assert sum(1 for i in items if i.get("type") == "usage_report") >= 4  # 2 sites x 2 hours
    return StreamReplay(records, items, deployment.timestream_view())


def firehose_event(records: list[Record]) -> dict[str, Any]:
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:111111111111:deliverystream/archive",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:111111111111:stream/telemetry",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{i:08d}",
                "approximateArrivalTimestamp": r.arrival_ms,
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
    <delivery stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>, and .gz for GZIP. The test sends
    in seconds what Firehose buffers for 5 minutes: the i-th buffer is named i minutes on, as
    Firehose's buffers are named minutes apart."""
    at = datetime.fromtimestamp(first.arrival_ms / 1000 + 60 * buffer, UTC)
    return f"{prefix}{at:%Y/%m/%d/%H}/luxflow-archive-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"


def write_archive(
    s3: Any, bucket: str, prefix: str, records: list[Record], *, buffers: int = 3
) -> list[tuple[str, bytes]]:
    """The archive path: records in arrival order, cut into `buffers` Firehose buffers (each
    holding both shards' records), each transformed by the Lambda, concatenated, GZIP'd and put
    under Firehose's key layout. Returns (key, uncompressed body) per object."""
    handler = load_lambda().handler
    size = -(-len(records) // buffers)
    objects = []
    for start in range(0, len(records), size):
        buffer = records[start : start + size]
        result = handler(firehose_event(buffer), None)
        assert {r["result"] for r in result["records"]} == {"Ok"}
        body = b"".join(base64.b64decode(r["data"]) for r in result["records"])
        objects.append((firehose_key(prefix, buffer[0], len(objects)), body))
    for key, body in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body))
    return objects


def fresh_deployment(
    moto_endpoint: str, aws: Callable[[str], Any], tmp_path: Path
) -> tuple[Deployment, str]:
    """An empty deployment with the same registry, and an archive bucket."""
    deployment = Deployment(moto_endpoint, aws, f"rb{uuid.uuid4().hex[:8]}", tmp_path)
    deployment.setup(shards=2)
    deployment.simulation(recent_params(**PARAMS))
    bucket = f"{deployment.name}-archive"
    aws("s3").create_bucket(Bucket=bucket)
    return deployment, bucket


def test_a_replay_from_the_archive_writes_what_a_replay_from_the_stream_writes(
    from_the_stream: StreamReplay,
    moto_endpoint: str,
    aws: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    deployment, bucket = fresh_deployment(moto_endpoint, aws, tmp_path)
    prefix = "raw/region=us-east-1/"
    objects = write_archive(aws("s3"), bucket, prefix, from_the_stream.records)
    assert all(b"shardId-000000000000" in b and b"shardId-000000000001" in b for _, b in objects)

    result = deployment.luxflow("replay", "--archive", f"s3://{bucket}/{prefix}", "--yes")

    records = len(from_the_stream.records)
    assert f"state deleted; reading {len(objects)} archive objects." in result.stdout
    assert f"archive: {records:,} records read, 3/3 objects" in result.stderr
    assert f"luxflow replay: {records} records read from the archive" in result.stderr
    assert (
        "0 archive lines and 0 records out of order dead-lettered, "
        "0 records repeated by the archive skipped"
    ) in result.stderr
    assert deployment.items() == from_the_stream.items
    assert deployment.timestream_view() == from_the_stream.query_model
    assert deployment.dead_letters() == []


def test_a_malformed_archive_line_is_dead_lettered_and_the_rest_replayed(
    from_the_stream: StreamReplay,
    moto_endpoint: str,
    aws: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    deployment, bucket = fresh_deployment(moto_endpoint, aws, tmp_path)
    s3 = aws("s3")
    prefix = "raw/region=us-east-1/"
    objects = write_archive(s3, bucket, prefix, from_the_stream.records)
    key, body = objects[1]
    lines = body.splitlines(keepends=True)
    lines.insert(5, MALFORMED + b"\n")  # line 6 of the second object
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"".join(lines)))
    # Firehose delivers at least once: the first object again, as a retried delivery would.
    first_key, first_body = objects[0]
    retry_key = first_key.replace(".gz", "-retried.gz")
    s3.put_object(Bucket=bucket, Key=retry_key, Body=gzip.compress(first_body))

    result = deployment.luxflow("replay", "--archive", f"s3://{bucket}/{prefix}", "--yes")

    repeated = first_body.count(b"\n")
    assert "1 archive lines and 0 records out of order dead-lettered" in result.stderr
    assert f"{repeated} records repeated by the archive skipped" in result.stderr
    assert deployment.items() == from_the_stream.items
    assert deployment.timestream_view() == from_the_stream.query_model
    [letter] = deployment.dead_letters()
    assert (letter.origin, letter.shard_id, letter.sequence_number) == ("archive", "archive", 6)
    assert letter.reason == "archive line: missing or mistyped field"
    assert letter.data == MALFORMED
    assert letter.detail_key == key
