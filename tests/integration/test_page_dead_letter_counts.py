"""The operator page's dead-letter counts against a real dead-letter table (moto): what one
refresh reads is bounded however large the table grew, and the page says when its counts are
a lower bound. The table is largest exactly when bad input floods it, which is when an
operator has the page open (it refreshes every few seconds)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from api.page_ops import MAX_SCAN_PAGES, Operations, dead_letters_by_hour
from api.page_sections import pipeline_section
from core.records import DeadLetter, Record
from core.retry import Backoff
from lighting.status import recent_dead_letters
from sinks.deadletter import DeadLetterSink
from sinks.provision import ensure_dead_letter_table
from tests.support.faulty import FaultyClient

pytestmark = pytest.mark.integration

NOW_MS = 1_790_000_000_000
SHARD = "shardId-000000000000"
SMALL = 5


def letters(sink: DeadLetterSink, start: int, count: int, size: int, reason: str) -> None:
    for seq in range(start, start + count):
        data = random.Random(seq).randbytes(size)
        record = Record(SHARD, 1_000 + seq, 0, "site-1", data, NOW_MS - 60_000)
        sink.write(DeadLetter.of(record, "decode", reason))
    sink.flush()


@pytest.fixture
def table(aws: Callable[[str], Any], unique_name: Callable[[str], str]) -> tuple[Any, str]:
    dynamodb = aws("dynamodb")
    name = unique_name("dlqpage")
    ensure_dead_letter_table(dynamodb, name)
    return dynamodb, name


def sink_of(dynamodb: Any, name: str) -> DeadLetterSink:
    return DeadLetterSink(dynamodb, name, Backoff(rng=random.Random(0), sleep=lambda _s: None))


def test_a_refresh_reads_a_bounded_part_of_a_flooded_table_and_says_so(
    table: tuple[Any, str],
) -> None:
    dynamodb, name = table
    sink = sink_of(dynamodb, name)
    letters(sink, 0, SMALL, 100, "not_json")
    # 40 records of 900 KB (a flood of too_large input): 120 chunk items, about 36 MB.
    letters(sink, SMALL, 40, 900_000, "too_large")
    counting = FaultyClient(dynamodb)

    by_hour, complete = dead_letters_by_hour(counting, name, NOW_MS)
    per_shard = recent_dead_letters(counting, name, NOW_MS - 3_600_000, max_pages=MAX_SCAN_PAGES)

    assert counting.calls["scan"] <= 2 * MAX_SCAN_PAGES
    assert not complete
    assert sum(d.count for d in by_hour) <= SMALL + 40
    assert per_shard.get(SHARD, 0) <= SMALL + 40
    html = pipeline_section(Operations([], by_hour, complete), NOW_MS)
    assert 'data-testid="dead-letters-partial"' in html
    assert "No dead letters" not in html


def test_a_small_table_is_counted_whole_in_one_page(table: tuple[Any, str]) -> None:
    dynamodb, name = table
    letters(sink_of(dynamodb, name), 0, SMALL, 100, "not_json")
    counting = FaultyClient(dynamodb)

    by_hour, complete = dead_letters_by_hour(counting, name, NOW_MS)

    assert counting.calls["scan"] == 1
    assert complete
    assert [(d.reason, d.count) for d in by_hour] == [("not_json", SMALL)]
    assert recent_dead_letters(dynamodb, name, NOW_MS - 3_600_000) == {SHARD: SMALL}
    html = pipeline_section(Operations([], by_hour, complete), NOW_MS)
    assert "dead-letters-partial" not in html
