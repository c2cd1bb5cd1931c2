"""DeadLetterSink against a moto server: 900 KB records split across items and read back."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from core.records import DeadLetter, Record
from core.retry import Backoff
from sinks.deadletter import DeadLetterSink, read_dead_letters
from sinks.provision import ensure_dead_letter_table
from tests.support.faulty import FaultyClient

pytestmark = pytest.mark.integration


def no_sleep() -> Backoff:
    return Backoff(rng=random.Random(0), sleep=lambda _s: None)


@pytest.fixture
def ddb(aws: Callable[[str], Any]) -> Any:
    return aws("dynamodb")


@pytest.fixture
def table(ddb: Any, unique_name: Callable[[str], str]) -> str:
    name = unique_name("dlq")
    ensure_dead_letter_table(ddb, name)
    return name


def record(seq: int, data: bytes, shard: str = "shardId-000000000000") -> Record:
    # A realistic 56-digit Kinesis sequence number: more digits than a DynamoDB number holds.
    return Record(
        shard,
        49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588 + seq,
        0,
        "site-1",
        data,
        1_700_000_000_000,
    )


def test_a_900_kb_dead_letter_round_trips_byte_for_byte(ddb: Any, table: str) -> None:
    data = random.Random(5).randbytes(900 * 1024)
    letter = DeadLetter.of(record(1, data), "decode", "not valid telemetry JSON")
    faulty = (
        FaultyClient(ddb, seed=4).partial("batch_write_item", 1).throttle("batch_write_item", 1)
    )
    sink = DeadLetterSink(faulty, table, no_sleep())
    sink.write(letter)
    sink.write("an ordinary output, ignored")
    sink.flush()

    assert read_dead_letters(ddb, table) == [letter]
    assert sink.count == 1 and sink.buffered == 0
    assert len(faulty.held_back["batch_write_item"]) >= 1


def test_writing_the_same_dead_letter_twice_stores_it_once(ddb: Any, table: str) -> None:
    sink = DeadLetterSink(ddb, table, no_sleep())
    first = DeadLetter.of(record(1, b"\x00bad"), "decode", "bad bytes")
    late = DeadLetter.of(record(2, b'{"ts": 1}'), "late", "beyond grace")
    empty = DeadLetter.of(record(3, b""), "decode", "empty record")
    for letter in [first, late, first, empty]:
        sink.write(letter)
    sink.flush()
    sink.write(first)  # re-processing after a crash
    sink.flush()
    assert read_dead_letters(ddb, table) == sorted(
        [first, late, empty], key=lambda d: d.sequence_number
    )


def test_same_record_different_origin_or_detail_are_distinct(ddb: Any, table: str) -> None:
    sink = DeadLetterSink(ddb, table, no_sleep())
    base = DeadLetter.of(record(1, b"x"), "timestream", "older_than_memory_retention")
    other = DeadLetter(
        **{**{f: getattr(base, f) for f in base.__struct_fields__}, "detail_key": "rollups"}
    )
    sink.write(base)
    sink.write(other)
    sink.flush()
    assert sorted(read_dead_letters(ddb, table), key=lambda d: d.detail_key) == [base, other]


def test_discard_drops_the_buffer(ddb: Any, table: str) -> None:
    sink = DeadLetterSink(ddb, table, no_sleep())
    sink.write(DeadLetter.of(record(1, b"x"), "decode", "bad"))
    sink.discard()
    sink.flush()
    assert read_dead_letters(ddb, table) == [] and sink.count == 0
