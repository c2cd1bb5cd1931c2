"""Dead letters hold raw device payloads: every item of one carries the expiry attribute the
dead-letter table's time-to-live is configured on, derived from the record's arrival."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.records import DeadLetter
from sinks.deadletter import CHUNK_BYTES, DEFAULT_RETENTION_MS, TTL_ATTRIBUTE, to_items

DAY_MS = 86_400_000
ROOT = Path(__file__).resolve().parents[2]


def letter(size: int, arrival_ms: int = 1_790_000_000_123) -> DeadLetter:
    return DeadLetter(
        shard_id="shardId-000000000001",
        sequence_number=49_000_000_000_000_000_000_000_000_001,
        sub_sequence_number=0,
        partition_key="site-1",
        origin="decode",
        reason="not_json",
        data=b"x" * size,
        arrival_ms=arrival_ms,
    )


def test_the_attribute_is_the_one_the_cdk_app_configures_the_table_with() -> None:
    source = (ROOT / "infra" / "lib" / "worker.ts").read_text()
    assert re.search(rf"DEAD_LETTER_TTL_ATTRIBUTE = '{TTL_ATTRIBUTE}'", source)


def test_every_chunk_of_a_dead_letter_expires_fourteen_days_after_arrival_by_default() -> None:
    items = to_items(letter(2 * CHUNK_BYTES + 5, arrival_ms=1_790_000_000_123))
    assert len(items) == 3
    assert DEFAULT_RETENTION_MS == 14 * DAY_MS
    # Epoch seconds, rounded up: never before the retention has passed.
    assert {item[TTL_ATTRIBUTE]["N"] for item in items} == {str(1_790_000_000 + 1 + 14 * 86_400)}


def test_the_retention_is_an_argument() -> None:
    (item,) = to_items(letter(10, arrival_ms=5_000), retention_ms=DAY_MS)
    assert item[TTL_ATTRIBUTE] == {"N": str(5 + 86_400)}


@given(
    st.integers(min_value=0, max_value=2**42),
    st.integers(min_value=1, max_value=400 * DAY_MS),
    st.integers(min_value=0, max_value=CHUNK_BYTES + 10),
)
def test_writing_a_dead_letter_again_writes_the_same_expiry(
    arrival_ms: int, retention_ms: int, size: int
) -> None:
    first = to_items(letter(size, arrival_ms), retention_ms)
    assert first == to_items(letter(size, arrival_ms), retention_ms)
    expiry_s = int(first[0][TTL_ATTRIBUTE]["N"])
    assert expiry_s * 1000 >= arrival_ms + retention_ms > (expiry_s - 1) * 1000


def test_a_sink_refuses_a_retention_that_is_not_positive() -> None:
    from core.retry import Backoff
    from sinks.deadletter import DeadLetterSink

    with pytest.raises(ValueError, match="positive"):
        DeadLetterSink(None, "t", Backoff(), retention_ms=0)  # type: ignore[arg-type]
