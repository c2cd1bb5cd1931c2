"""The archive reader without S3: objects listed in delivery order within --from/--to, lines to
records or bad lines, and every shard's records given once, in sequence order."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.records import Record
from streams.kinesis.archive import encode_line
from streams.kinesis.archive_reader import (
    BadLine,
    ShardOrder,
    list_objects,
    object_lines,
    parse_s3_url,
)

HOUR = 3_600_000
T0 = 1_796_648_400_000  # 2026-12-07T13:00Z


def record(shard: str, seq: int, arrival_ms: int = T0) -> Record:
    return Record(shard, seq, 0, "site-1", b"x%d" % seq, arrival_ms)


class Listing:
    """`list_objects_v2` over fixed keys, two per page (the real S3 call's contract)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        start = int(kwargs.get("ContinuationToken", 0))
        page = [k for k in self.keys if k.startswith(kwargs["Prefix"])][start : start + 2]
        more = start + 2 < len(self.keys)
        out: dict[str, Any] = {
            "Contents": [{"Key": k, "Size": 10} for k in page],
            "IsTruncated": more,
        }
        if more:
            out["NextContinuationToken"] = str(start + 2)
        return out


def key(hour: int, second: int = 0) -> str:
    return f"raw/2026/12/07/{hour:02d}/lf-1-2026-12-07-{hour:02d}-00-{second:02d}-u.gz"


def test_objects_are_listed_in_delivery_order_across_pages() -> None:
    keys = [key(15), key(13, 5), key(14), key(13, 1), key(16)]
    found = list_objects(Listing(keys), "b", "raw/")
    assert [o.key for o in found] == sorted(keys)


def test_from_keeps_the_hour_before_and_to_drops_hours_starting_at_or_after_it() -> None:
    keys = [key(h) for h in (10, 11, 12, 13, 14, 15)]
    found = list_objects(Listing(keys), "b", "raw/", from_ms=T0 - HOUR // 2, to_ms=T0 + HOUR)
    assert [o.key for o in found] == [key(11), key(12), key(13)]


def test_an_s3_url_names_bucket_and_prefix() -> None:
    assert parse_s3_url("s3://bucket/raw/region=eu-west-1/") == ("bucket", "raw/region=eu-west-1/")
    with pytest.raises(ConfigError):
        parse_s3_url("/tmp/archive")


def test_lines_of_a_gzip_object_decode_and_a_bad_line_is_kept_whole() -> None:
    body = encode_line(record("s0", 1)) + b"\n" + b"oops\n" + encode_line(record("s0", 2))
    items = list(object_lines("k", gzip.compress(body)))
    assert items == [
        record("s0", 1),
        BadLine("k", 3, b"oops", "archive line: not JSON"),
        record("s0", 2),
    ]


def test_an_object_that_does_not_decompress_is_one_bad_line() -> None:
    body = gzip.compress(encode_line(record("s0", 1)))[:-9]
    assert list(object_lines("k", body)) == [
        BadLine("k", 0, body, "archive object: not a readable GZIP file")
    ]


def test_shards_are_given_in_sequence_order_repeats_once_and_late_ones_apart() -> None:
    order = ShardOrder()
    given, late = order.batches([record("s1", 5), record("s0", 3), record("s1", 2)])
    assert given == {"s0": [record("s0", 3)], "s1": [record("s1", 2), record("s1", 5)]}
    assert late == []
    given, late = order.batches([record("s1", 5), record("s1", 4), record("s1", 9)])
    assert given == {"s1": [record("s1", 9)]}
    assert late == [record("s1", 4)]
    assert order.repeated == 1


def test_from_and_to_select_by_arrival_time() -> None:
    order = ShardOrder(from_ms=T0, to_ms=T0 + 10)
    given, _ = order.batches([record("s", 1, T0 - 1), record("s", 2, T0), record("s", 3, T0 + 10)])
    assert given == {"s": [record("s", 2, T0)]}


@given(
    st.lists(st.lists(st.integers(0, 60), max_size=30), max_size=6),
)
def test_every_record_is_given_once_in_order_or_set_apart(objects: list[list[int]]) -> None:
    order = ShardOrder()
    given_all: list[int] = []
    late_all: list[int] = []
    for sequences in objects:
        given, late = order.batches([record("s", seq) for seq in sequences])
        given_all += [r.sequence_number for r in given.get("s", [])]
        late_all += [r.sequence_number for r in late]
    assert given_all == sorted(set(given_all))
    assert sorted(given_all + late_all) == sorted({s for seqs in objects for s in seqs})
