"""Poison records between valid ones on one shard, through the real CLI worker on moto: the
valid readings are stored in DynamoDB and Timestream, the poison is dead-lettered with its
reason, the checkpoint passes it and the worker exits 0."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.timestamps import format_ts
from tests.support.deployment import Deployment

pytestmark = pytest.mark.integration


def reading(asset_id: str, ts_ms: int) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "site_id": "site-1",
            "building_id": "b-1",
            "room_id": "r-1",
            "asset_id": asset_id,
            "ts": format_ts(ts_ms),
            "power_w": 40.0,
            "voltage_v": 230.0,
            "current_a": 0.17,
            "lux": 300.0,
            "on": True,
            "dim_level": 80,
            "fault_code": "E42",
        }
    ).encode()


def last_sequence_number(kinesis: Any, stream: str) -> int:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=1_000)["Records"]
    return max(int(r["SequenceNumber"]) for r in records)


def test_poison_ids_and_nesting_are_dead_lettered_and_the_shard_goes_on(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    deployment = Deployment(moto_endpoint, aws, unique_name("px"), tmp_path)
    deployment.setup(shards=1)
    ts_ms = time.time_ns() // 1_000_000 - 600_000
    long_id = reading("a" * 3_000, ts_ms)
    hash_id = reading("lamp#9", ts_ms)
    nested = b'{"v":1,"x":' + b"[" * 6_000 + b"]" * 6_000 + b"}"
    payloads = [
        reading("lamp-1", ts_ms),
        reading("lamp-2", ts_ms),
        long_id,
        reading("lamp-3", ts_ms),
        hash_id,
        reading("lamp-4", ts_ms),
        nested,
        reading("lamp-5", ts_ms),
    ]
    deployment.send(("site-1", data) for data in payloads)
    assert deployment.run_worker_until_idle(quiet_s=3) == len(payloads)

    valid = {f"lamp-{n}" for n in range(1, 6)}
    items = deployment.items()
    states = {item["asset_id"] for item in items if item.get("type") == "asset_state"}
    assert states == valid
    faults = {(item["asset_id"], item["code"]) for item in items if item.get("type") == "fault"}
    assert {asset for asset, code in faults if code == "E42"} == valid
    assert {asset for asset, _ in faults} <= valid

    points = deployment.timestream_points()
    opened = {
        dim["Value"]
        for point in points
        if point.get("MeasureName") == "fault_opened"
        for dim in point["Dimensions"]
        if dim["Name"] == "asset"
    }
    assert opened == valid
    assets_in_points = {
        dim["Value"] for point in points for dim in point["Dimensions"] if dim["Name"] == "asset"
    }
    assert assets_in_points <= valid

    letters = deployment.dead_letters()
    assert sorted((letter.reason, letter.data) for letter in letters) == sorted(
        [
            ("bad_id: asset_id", long_id),
            ("bad_id: asset_id", hash_id),
            ("too_deep", nested),
        ]
    )
    assert all(letter.origin == "decode" for letter in letters)

    (lease,) = deployment.leases().values()
    stream = deployment.env["LUXFLOW_STREAM"]
    assert int(lease["checkpoint"]) == last_sequence_number(deployment.aws("kinesis"), stream)
