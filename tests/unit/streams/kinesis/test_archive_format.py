"""The archive's line format: what the Firehose transformation Lambda writes is what
`streams.kinesis.archive` reads back, record for record, and nothing else decodes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.archive_path import firehose_event, load_lambda
from core.records import Record
from streams.kinesis.archive import (
    ArchiveFormatError,
    decode_line,
    encode_line,
    object_hour_ms,
)


def through_lambda(records: list[Record]) -> list[Record]:
    result = load_lambda().handler(firehose_event(records), None)
    assert [r["result"] for r in result["records"]] == ["Ok"] * len(records)
    assert [r["recordId"] for r in result["records"]] == [f"{i:08d}" for i in range(len(records))]
    lines = b"".join(base64.b64decode(r["data"]) for r in result["records"])
    assert lines.count(b"\n") == len(records)  # one line per record, as S3 gets them
    return [decode_line(line) for line in lines.splitlines()]


records_st = st.lists(
    st.builds(
        Record,
        shard_id=st.from_regex(r"shardId-[0-9]{12}", fullmatch=True),
        sequence_number=st.integers(0, 2**185),
        sub_sequence_number=st.integers(0, 2**31),
        partition_key=st.text(min_size=1, max_size=256),
        data=st.binary(max_size=2048),
        arrival_ms=st.integers(0, 2**45),
    ),
    max_size=20,
)


def test_the_lambda_keeps_arrival_time_shard_sequence_partition_key_and_bytes() -> None:
    records = [
        Record("shardId-000000000001", 49_650_000_000_000_000_000_000_000_017, 0, "site-1",
               b'{"site":"site-1"}', 1_764_770_400_123),
        Record("shardId-000000000000", 49_650_000_000_000_000_000_000_000_018, 3, "site-2",
               b"\x00\xff not json", 1_764_770_400_124),
    ]  # fmt: skip
    assert through_lambda(records) == records


@given(records_st)
def test_the_lambda_and_the_python_encoder_agree_on_any_record(records: list[Record]) -> None:
    assert through_lambda(records) == records
    assert [decode_line(encode_line(r)) for r in records] == records


def test_a_record_without_kinesis_metadata_fails_in_firehose_rather_than_archived() -> None:
    event = firehose_event([Record("s", 1, 0, "pk", b"x", 1)])
    del event["records"][0]["kinesisRecordMetadata"]
    result = load_lambda().handler(event, None)
    failed = {"recordId": "00000000", "result": "ProcessingFailed", "data": "eA=="}
    assert result["records"] == [failed]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json at all", "archive line: not JSON"),
        (b'{"v":1}', "archive line: missing or mistyped field"),
        (b'{"v":2,"shard":"s","seq":"1","sub":0,"pk":"p","arrival_ms":1,"data":""}',
         "archive line: unknown format version"),
        (b'{"v":1,"shard":"s","seq":"-1","sub":0,"pk":"p","arrival_ms":1,"data":""}',
         "archive line: bad sequence number or arrival time"),
        (b'{"v":1,"shard":"s","seq":"1","sub":0,"pk":"p","arrival_ms":1,"data":"@@"}',
         "archive line: data is not base64"),
    ],
)  # fmt: skip
def test_a_line_that_is_not_a_record_has_a_stable_reason(line: bytes, reason: str) -> None:
    with pytest.raises(ArchiveFormatError) as raised:
        decode_line(line)
    assert raised.value.reason == reason


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_record_or_an_archive_format_error(line: bytes) -> None:
    try:
        decode_line(line)
    except ArchiveFormatError as exc:
        assert exc.reason.startswith("archive line: ")


def test_the_hour_of_an_object_comes_from_firehose_s_key() -> None:
    key = "raw/region=eu-west-1/2026/12/07/13/lf-archive-1-2026-12-07-13-04-59-0a1b.gz"
    assert object_hour_ms(key) == 1_796_648_400_000
    assert object_hour_ms("raw/region=eu-west-1/manifest.json") is None
    assert object_hour_ms("raw/2026/13/07/13/x.gz") is None
