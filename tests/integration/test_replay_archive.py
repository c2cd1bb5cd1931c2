"""`luxflow replay --archive` over real HTTP (moto server: Kinesis, DynamoDB, Timestream, S3):
the archive written as the archive path writes it (the Firehose transformation Lambda run on
the records as Firehose hands them over, GZIP objects under Firehose's key layout, one object
per buffer with every shard's records) replays into a fresh deployment the same command-model
items and Timestream records as a replay of the same records from the stream.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.archive_path import stream_records, write_archive
from core.records import Record
from tests.support.deployment import Deployment, recent_params

pytestmark = pytest.mark.integration

PARAMS: dict[str, Any] = {"sites": 2, "hours": 2}
MALFORMED = b'{"v":1,"shard":"shardId-000000000000","seq":"12x","sub":0}'


@dataclass
class StreamReplay:
    records: list[Record]
    items: list[dict[str, Any]]
    query_model: dict[Any, Any]


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
    records = stream_records(deployment.aws("kinesis"), deployment.env["LUXFLOW_STREAM"])
    assert len(records) == len(sent) and len({r.shard_id for r in records}) == 2
    items = deployment.items()
    assert sum(1 for i in items if i.get("type") == "usage_report") >= 4  # 2 sites x 2 hours
    return StreamReplay(records, items, deployment.timestream_view())


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
