"""The fault-injecting wrapper itself: what it reports failed never reached the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.faulty import FaultyClient

pytestmark = pytest.mark.integration


def read_all(kinesis: Any, stream: str) -> list[bytes]:
    shard_id = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]]


def test_put_records_partial_failure_and_throttle(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    kinesis = aws("kinesis")
    stream = unique_name("stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    for _ in range(100):
        if (
            kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        ):
            break
        time.sleep(0.05)
    faulty = FaultyClient(kinesis, seed=1, hold_back_fraction=0.3)
    faulty.throttle("put_records", 1).partial("put_records", 1)
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": "site-1"} for i in range(10)]

    with pytest.raises(ClientError) as raised:
        faulty.put_records(StreamName=stream, Records=entries)
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"

    response = faulty.put_records(StreamName=stream, Records=entries)
    failed = [i for i, r in enumerate(response["Records"]) if "ErrorCode" in r]
    assert response["FailedRecordCount"] == len(failed) == 3
    assert all(
        response["Records"][i]["ErrorCode"] == "ProvisionedThroughputExceededException"
        for i in failed
    )
    assert all("SequenceNumber" in r for i, r in enumerate(response["Records"]) if i not in failed)
    assert [e["Data"] for e in faulty.held_back["put_records"]] == [
        entries[i]["Data"] for i in failed
    ]
    assert read_all(kinesis, stream) == [
        e["Data"] for i, e in enumerate(entries) if i not in failed
    ]
    assert [outcome for _, outcome, _ in faulty.log] == ["throttled", "partial"]
