"""What a sink hands to `reject` and what the worker's dead-letter reject makes of it: one
dead letter per refusal, its bytes the JSON of the refused thing (else its repr), its reason
bounded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from core.records import DeadLetter
from sinks.memory import InMemorySink
from sinks.rejects import MAX_REASON_CHARS, as_json, bounded_reason, dead_letter_reject


def item_key(item: Mapping[str, object]) -> str:
    return f"{item.get('pk', '')}#{item.get('sk', '')}"


def letters() -> InMemorySink:
    return InMemorySink(key=lambda letter: letter.detail_key)  # type: ignore[attr-defined]


def test_each_refused_item_becomes_one_dead_letter_of_the_shard_and_store() -> None:
    dead = letters()
    clock = iter([1_000, 2_000])
    reject = dead_letter_reject(
        dead,
        shard_id="shardId-1",
        origin="dynamodb",
        detail_key=item_key,
        now_ms=lambda: next(clock),
    )
    reject({"pk": "ASSET#a", "sk": "STATE", "n": 1}, "dynamodb_validation: too big")
    reject({"pk": "ASSET#b", "sk": "STATE"}, "dynamodb_validation: key too long")
    dead.flush()
    assert dead.values() == [
        DeadLetter(
            "shardId-1",
            0,
            0,
            "",
            "dynamodb",
            "dynamodb_validation: too big",
            b'{"pk":"ASSET#a","sk":"STATE","n":1}',
            1_000,
            detail_key="ASSET#a#STATE",
        ),
        DeadLetter(
            "shardId-1",
            0,
            0,
            "",
            "dynamodb",
            "dynamodb_validation: key too long",
            b'{"pk":"ASSET#b","sk":"STATE"}',
            2_000,
            detail_key="ASSET#b#STATE",
        ),
    ]


@dataclass
class Point:
    measure_name: str
    time_ms: int


def test_a_point_keeps_its_json_and_what_json_cannot_hold_keeps_its_repr() -> None:
    assert as_json(Point("usage", 5)) == b'{"measure_name":"usage","time_ms":5}'
    unencodable = {"value": object()}
    assert as_json(unencodable) == repr(unencodable).encode()
    assert as_json("\ud800") == b"'\\ud800'"


@given(st.dictionaries(st.text(), st.one_of(st.integers(), st.text(), st.booleans())))
def test_json_of_plain_values_reads_back_as_they_were(item: dict[str, object]) -> None:
    assert msgspec.json.decode(as_json(item)) == item


@given(code=st.text(max_size=50), detail=st.text(max_size=3 * MAX_REASON_CHARS))
def test_a_reason_is_code_then_detail_cut_to_the_bound(code: str, detail: str) -> None:
    text = bounded_reason(code, detail)
    assert text == f"{code}: {detail}"[:MAX_REASON_CHARS]
    assert len(text) <= MAX_REASON_CHARS
