"""Poison input through the real stack, in process: decode -> the lighting app -> in-memory
sinks -> checkpoint, driven by a real ShardEngine. Nothing raises out of the engine, every
record is processed or dead-lettered with a documented reason, the checkpoint passes all."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.records import DeadLetter, Position, Record
from domain import views
from domain.ids import ID_PATTERN
from domain.registry import Registry
from domain.telemetry import DECODE_REASONS, decode_reading, reason_code
from domain.timestamps import format_ts
from lighting.admission import UNKNOWN_ASSET
from lighting.agents import build_app
from lighting.registry import RegistryCache, empty_registry
from sinks.memory import InMemorySink
from streams.testing import AgentTestContext

SHARD = "shardId-000000000000"
TS_MS = 1_795_870_800_000
ARRIVAL_MS = TS_MS + 1_000
STABLE_REASONS = DECODE_REASONS | {UNKNOWN_ASSET}


def wire(asset_id: str = "lamp-1", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "v": 1,
        "site_id": "site-1",
        "building_id": "b-1",
        "room_id": "r-1",
        "asset_id": asset_id,
        "ts": format_ts(TS_MS),
        "power_w": 42.5,
        "voltage_v": 230.1,
        "current_a": 0.18,
        "lux": 310.0,
        "on": True,
        "dim_level": 80,
    }
    record.update(overrides)
    return record


def raw(asset_id: str = "lamp-1", **overrides: Any) -> bytes:
    return json.dumps(wire(asset_id, **overrides)).encode()


def write_key(write: Any) -> Hashable:
    return (write.item["pk"], write.item["sk"])


def point_key(point: Any) -> Hashable:
    return (point.table, tuple(sorted(point.dimensions.items())), point.measure_name, point.time_ms)


def letter_key(letter: Any) -> Hashable:
    return (letter.sequence_number, letter.origin, letter.detail_key)


class Stack:
    """The real lighting app on one shard, with in-memory command, query and dead-letter
    sinks, state store and checkpointer."""

    def __init__(self, registry: RegistryCache | None = None) -> None:
        self.app = build_app(registry or empty_registry(), topic="t", grace_ms=600_000)
        self.command = InMemorySink(views.command_writes, write_key)
        self.query = InMemorySink(views.time_points, point_key)
        self.dead = InMemorySink(key=letter_key)
        context = AgentTestContext(
            self.app,
            shard_id=SHARD,
            now_ms=ARRIVAL_MS,
            sinks=[self.command, self.query],
            dead_letter=self.dead,
        )
        self.checkpoints = context.checkpointer
        self.engine = context.engine

    def run(self, payloads: list[bytes]) -> list[Record]:
        records = [
            Record(SHARD, seq, 0, "site-1", data, ARRIVAL_MS)
            for seq, data in enumerate(payloads, start=1)
        ]
        self.engine.process_records(records)
        self.engine.process_records([], millis_behind_latest=0)
        self.engine.checkpoint.commit()
        return records

    def letters(self) -> list[DeadLetter]:
        return [letter for letter in self.dead.values() if isinstance(letter, DeadLetter)]

    def stored_assets(self) -> set[str]:
        return {
            str(key[0]).removeprefix("ASSET#")
            for key in self.command.stored
            if isinstance(key, tuple) and str(key[0]).startswith("ASSET#") and key[1] == "STATE"
        }


# -- one test per poison class -------------------------------------------------------------

NESTED_12KB = b"[" * 6_000 + b"]" * 6_000
POISON: dict[str, tuple[bytes, str]] = {
    "not_utf8": (raw().replace(b"lamp-1", b"lamp-\xff"), "not_utf8"),
    "not_json": (b"\x00\x01 definitely not json", "not_json"),
    "too_deep_top_level": (NESTED_12KB, "too_deep"),
    "too_deep_in_unknown_field": (raw(x=None).replace(b"null", NESTED_12KB), "too_deep"),
    "too_large": (raw(pad="x" * 70_000), "too_large"),
    "bad_type": (raw(power_w="high"), "bad_type"),
    "not_an_object": (b"[1, 2]", "bad_type"),
    "missing_field": (json.dumps({"v": 1, "asset_id": "x"}).encode(), "missing_field"),
    "unknown_schema": (raw(v=3), "unknown_schema"),
    "bad_id_3000_chars": (raw("a" * 3_000), "bad_id"),
    "bad_id_hash": (raw("a#b"), "bad_id"),
    "bad_id_hash_in_site": (raw(site_id="a#b"), "bad_id"),
    "bad_id_nul": (raw("lamp\x001"), "bad_id"),
    "bad_id_newline": (raw("lamp\n1"), "bad_id"),
    "bad_id_fault_code": (raw(fault_code="x#y"), "bad_id"),
    "bad_value_nan": (raw(power_w=math.nan), "bad_value"),
    "bad_value_inf": (raw(lux=math.inf), "bad_value"),
    "clock_skew_future": (raw(ts="2999-01-01T00:00:00.000Z"), "clock_skew"),
    "bad_ts_ancient": (raw(ts="1970-01-01T00:00:00.000Z"), "bad_ts"),
    "bad_ts_unparsable": (raw(ts="yesterday"), "bad_ts"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_record_between_valid_ones(name: str) -> None:
    poison, code = POISON[name]
    stack = Stack()
    payloads = [raw("lamp-1"), raw("lamp-2"), poison, raw("lamp-4"), raw("lamp-5")]
    stack.run(payloads)

    assert stack.stored_assets() == {"lamp-1", "lamp-2", "lamp-4", "lamp-5"}
    letters = stack.letters()
    assert [(letter.sequence_number, letter.origin) for letter in letters] == [(3, "decode")]
    assert reason_code(letters[0].reason) == code
    assert letters[0].data == poison
    assert stack.checkpoints.positions[SHARD] == Position(5)


def test_an_unknown_asset_beyond_the_cap_between_valid_ones() -> None:
    registry = RegistryCache(lambda: Registry([]), 2**62, lambda: 0, unknown_asset_cap=4)
    stack = Stack(registry)
    stack.run([raw(f"lamp-{n}") for n in range(1, 6)] + [raw("lamp-1"), raw("lamp-2")])

    assert stack.stored_assets() == {"lamp-1", "lamp-2", "lamp-3", "lamp-4"}
    assert [(letter.sequence_number, letter.reason) for letter in stack.letters()] == [
        (5, "unknown_asset")
    ]
    assert stack.checkpoints.positions[SHARD] == Position(7)


def test_a_missing_schema_version_is_processed_as_version_1() -> None:
    stack = Stack()
    record = wire("lamp-1")
    del record["v"]
    stack.run([json.dumps(record).encode()])
    assert stack.stored_assets() == {"lamp-1"}
    assert stack.letters() == []


# -- property: arbitrary input -------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
IDS = (
    st.from_regex(ID_PATTERN, fullmatch=True)
    | st.text(max_size=20)
    | st.text(alphabet=st.characters(codec="utf-8"), min_size=100, max_size=3_000)
    | st.sampled_from(["a#b", "a\x00b", "a\nb", "", " ", "é", "\u202e", "x" * 129])
)
FIELD_VALUES = {
    "v": st.sampled_from([1, 1, 1, 2, None, "1", True]),
    "site_id": IDS,
    "building_id": IDS,
    "room_id": IDS,
    "asset_id": IDS,
    "ts": st.sampled_from([format_ts(TS_MS), format_ts(TS_MS - 3_600_000), "", "x", "1970"])
    | st.text(max_size=30),
    "power_w": st.floats() | st.integers(min_value=-(2**70), max_value=2**70),
    "voltage_v": st.floats(),
    "current_a": st.floats(),
    "lux": st.floats(),
    "on": st.booleans() | st.integers(0, 1),
    "dim_level": st.integers(min_value=-(2**70), max_value=2**70),
    "fault_code": st.none() | IDS,
}


@st.composite
def mutated_readings(draw: st.DrawFn) -> bytes:
    """A valid reading with some fields replaced, removed, or given arbitrary JSON."""
    record = wire(draw(st.from_regex(ID_PATTERN, fullmatch=True)))
    for name, values in FIELD_VALUES.items():
        choice = draw(st.sampled_from(["keep", "keep", "keep", "value", "any", "drop"]))
        if choice == "value":
            record[name] = draw(values)
        elif choice == "any":
            record[name] = draw(ANY_JSON)
        elif choice == "drop":
            record.pop(name, None)
    if draw(st.booleans()):
        record["extra"] = draw(ANY_JSON)
    return json.dumps(record).encode("utf-8", "surrogatepass")


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=10_000))
    brackets = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nested = brackets[0] * depth + b"1" + brackets[1] * depth
    if draw(st.booleans()):
        return nested
    return raw(extra=None).replace(b'"extra": null', b'"extra": ' + nested)


PAYLOADS = (
    st.binary(max_size=200)
    | ANY_JSON.map(lambda value: json.dumps(value).encode())
    | mutated_readings()
    | deeply_nested()
    | st.builds(raw, st.from_regex(ID_PATTERN, fullmatch=True))
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(PAYLOADS, min_size=1, max_size=12))
def test_arbitrary_input_is_processed_or_dead_lettered_and_checkpointed(
    payloads: list[bytes],
) -> None:
    stack = Stack()
    records = stack.run(payloads)  # nothing may raise out of the engine

    decode_letters = {
        letter.sequence_number: letter for letter in stack.letters() if letter.origin == "decode"
    }
    assert all(letter.origin in ("decode", "late") for letter in stack.letters())
    for record in records:
        try:
            decode_reading(record.data, record.arrival_ms)
            valid = True
        except ValueError as exc:
            valid = False
            assert type(exc).__name__ == "InvalidTelemetry"
        letter = decode_letters.get(record.sequence_number)
        if valid:
            assert letter is None
        else:
            assert letter is not None, record.data[:200]
            assert reason_code(letter.reason) in STABLE_REASONS, letter.reason
            assert letter.data == record.data
    assert stack.checkpoints.positions[SHARD] == records[-1].position
