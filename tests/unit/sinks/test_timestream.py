"""Timestream record building and retention, dead-letter chunking: the pure parts of the sinks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.records import DeadLetter
from sinks.deadletter import CHUNK_BYTES, chunk_count, dead_letter_key, to_items
from sinks.timestream import hoist_common, is_older_than_memory_retention, to_record


@dataclass(frozen=True)
class Point:
    table: str
    dimensions: dict[str, str]
    measure_name: str
    measures: dict[str, float | int | str | bool]
    time_ms: int
    version: int = 1


@dataclass(frozen=True)
class UnversionedPoint:
    table: str = "t"
    dimensions: dict[str, str] = field(default_factory=lambda: {"asset": "a1"})
    measure_name: str = "rollup"
    measures: dict[str, float | int | str | bool] = field(default_factory=lambda: {"n": 1})
    time_ms: int = 5


def test_multi_measure_record_with_typed_values() -> None:
    point = Point(
        "rollups",
        {"site": "s1", "asset": "a1"},
        "energy",
        {"wh": 1.5, "count": 3, "state": "on", "faulty": False},
        1_700_000_000_000,
        version=7,
    )
    assert to_record(point) == {
        "Dimensions": [
            {"Name": "site", "Value": "s1", "DimensionValueType": "VARCHAR"},
            {"Name": "asset", "Value": "a1", "DimensionValueType": "VARCHAR"},
        ],
        "MeasureName": "energy",
        "MeasureValueType": "MULTI",
        "MeasureValues": [
            {"Name": "wh", "Value": "1.5", "Type": "DOUBLE"},
            {"Name": "count", "Value": "3", "Type": "BIGINT"},
            {"Name": "state", "Value": "on", "Type": "VARCHAR"},
            {"Name": "faulty", "Value": "false", "Type": "BOOLEAN"},
        ],
        "Time": "1700000000000",
        "TimeUnit": "MILLISECONDS",
        "Version": 7,
    }


def test_version_defaults_to_one() -> None:
    assert to_record(UnversionedPoint())["Version"] == 1


def test_points_without_measures_or_with_nan_are_invalid() -> None:
    with pytest.raises(ValueError):
        to_record(UnversionedPoint(measures={}))
    with pytest.raises(ValueError):
        to_record(UnversionedPoint(measures={"x": float("nan")}))


def test_hoists_only_what_every_record_shares() -> None:
    a = to_record(Point("t", {"asset": "a1"}, "m", {"x": 1}, 1))
    b = to_record(Point("t", {"asset": "a1"}, "m", {"x": 2}, 2))
    c = to_record(Point("t", {"asset": "a2"}, "m", {"x": 3}, 3, version=2))
    common, records = hoist_common([a, b])
    assert common == {
        "Dimensions": a["Dimensions"],
        "MeasureName": "m",
        "MeasureValueType": "MULTI",
        "TimeUnit": "MILLISECONDS",
        "Version": 1,
    }
    assert records == [
        {"MeasureValues": a["MeasureValues"], "Time": "1"},
        {"MeasureValues": b["MeasureValues"], "Time": "2"},
    ]
    common, records = hoist_common([a, c])
    assert set(common) == {"MeasureName", "MeasureValueType", "TimeUnit"}
    assert records[1]["Dimensions"] == c["Dimensions"] and records[1]["Version"] == 2


def test_retention_boundary() -> None:
    now_ms, retention_ms = 10_000, 1_000
    assert is_older_than_memory_retention(8_999, now_ms, retention_ms)
    assert not is_older_than_memory_retention(9_000, now_ms, retention_ms)
    assert not is_older_than_memory_retention(10_500, now_ms, retention_ms)


def letter(data: bytes) -> DeadLetter:
    return DeadLetter("shardId-000000000001", 12345, 2, "site-9", "decode", "bad json", data, 77)


def test_dead_letter_key_is_its_identity() -> None:
    assert (
        dead_letter_key(letter(b""))
        == "shardId-000000000001#0000000000000000000000000000000000012345#2#decode#"
    )


@pytest.mark.parametrize(
    ("size", "chunks"), [(0, 1), (1, 1), (CHUNK_BYTES, 1), (CHUNK_BYTES + 1, 2), (900_000, 3)]
)
def test_chunk_count(size: int, chunks: int) -> None:
    assert chunk_count(size) == chunks


def test_items_split_the_data_and_put_the_metadata_item_last() -> None:
    data = bytes(range(256)) * 3_600  # 921,600 bytes
    items = to_items(letter(data))
    assert [item["sk"]["N"] for item in items] == ["1", "2", "3", "0"]
    assert all(len(item["data"]["B"]) <= CHUNK_BYTES for item in items)
    by_sk = {int(item["sk"]["N"]): item["data"]["B"] for item in items}
    assert b"".join(by_sk[n] for n in range(4)) == data
    head = items[-1]
    assert head["chunk_count"] == {"N": "4"} and head["size"] == {"N": str(len(data))}
    assert head["sequence_number"] == {"S": "12345"} and head["reason"] == {"S": "bad json"}
    assert "reason" not in items[0]
