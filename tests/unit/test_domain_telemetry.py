"""Decoding telemetry: good records, every rejection reason, encode round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain import telemetry
from domain.telemetry import (
    MAX_RECORD_BYTES,
    InvalidTelemetry,
    Reading,
    Telemetry,
    decode_reading,
    encode_reading,
    encode_telemetry,
    telemetry_of,
)

TS_MS = 1_795_870_800_123  # 2026-11-28T13:00:00.123Z
ARRIVAL_MS = TS_MS + 500


def wire(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "v": 1,
        "site_id": "site-1",
        "building_id": "b-1",
        "room_id": "r-1",
        "asset_id": "lamp-1",
        "ts": "2026-11-28T13:00:00.123Z",
        "power_w": 42.5,
        "voltage_v": 230.1,
        "current_a": 0.1847,
        "lux": 310.0,
        "on": True,
        "dim_level": 80,
    }
    record.update(overrides)
    return record


def raw(**overrides: Any) -> bytes:
    return json.dumps(wire(**overrides)).encode()


def reason_of(data: bytes, arrival_ms: int = ARRIVAL_MS) -> str:
    with pytest.raises(InvalidTelemetry) as info:
        decode_reading(data, arrival_ms)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_decodes_a_good_record() -> None:
    assert decode_reading(raw(), ARRIVAL_MS) == Reading(
        "site-1", "b-1", "r-1", "lamp-1", TS_MS, 42.5, 230.1, 0.1847, 310.0, True, 80, None
    )


def test_decodes_fault_code_ints_for_floats_and_ignores_unknown_fields() -> None:
    reading = decode_reading(raw(fault_code="E42", power_w=40, firmware="1.2"), ARRIVAL_MS)
    assert reading.fault_code == "E42"
    assert reading.power_w == 40.0
    assert type(reading.power_w) is float


def test_empty_or_null_fault_code_means_no_fault() -> None:
    assert decode_reading(raw(fault_code=""), ARRIVAL_MS).fault_code is None
    assert decode_reading(raw(fault_code=None), ARRIVAL_MS).fault_code is None


def test_accepts_other_iso_forms_converted_to_utc() -> None:
    assert decode_reading(raw(ts="2026-11-28T14:00:00.123+01:00"), ARRIVAL_MS).ts_ms == TS_MS
    assert decode_reading(raw(ts="2026-11-28T13:00:00Z"), ARRIVAL_MS).ts_ms == TS_MS - 123


def test_round_trip_through_the_wire() -> None:
    reading = Reading("s", "b", "r", "a", TS_MS, 0.1 + 0.2, 229.9, 1 / 3, 0.0, False, 0, "X")
    assert decode_reading(encode_reading(reading), ARRIVAL_MS) == reading
    assert telemetry_of(reading).ts == "2026-11-28T13:00:00.123Z"
    assert encode_telemetry(telemetry_of(reading)) == encode_reading(reading)


def test_encoding_omits_absent_fault_code() -> None:
    telemetry = Telemetry(
        1, "s", "b", "r", "a", "2026-11-28T13:00:00.123Z", 1.0, 2.0, 3.0, 4.0, True, 5
    )
    assert b"fault_code" not in encode_telemetry(telemetry)


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{", b"\xff\xfe", b'{"v": 1, "power_w": NaNx}'],
)
def test_not_json(data: bytes) -> None:
    assert reason_of(data) == "not_json"


def test_trailing_bytes_after_a_record_are_not_json() -> None:
    assert reason_of(raw() + b" x") == "not_json"


def test_too_large_is_checked_before_parsing() -> None:
    blob = b"{" + b" " * 900_000 + b"}"
    assert reason_of(blob) == "too_large"
    padded = raw(pad="x" * (MAX_RECORD_BYTES - len(raw(pad=""))))
    assert len(padded) == MAX_RECORD_BYTES
    assert decode_reading(padded, ARRIVAL_MS).asset_id == "lamp-1"
    assert reason_of(padded[:-1] + b" }") == "too_large"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"power_w": "42"}, "wrong_type: Expected `float`, got `str` - at `$.power_w`"),
        ({"on": 1}, "wrong_type: Expected `bool`, got `int` - at `$.on`"),
        ({"dim_level": 50.5}, "wrong_type: Expected `int`, got `float` - at `$.dim_level`"),
        ({"site_id": 7}, "wrong_type: Expected `str`, got `int` - at `$.site_id`"),
        ({"fault_code": 3}, "wrong_type: Expected `str | null`, got `int` - at `$.fault_code`"),
        ({"ts": 1795870800123}, "wrong_type: Expected `str`, got `int` - at `$.ts`"),
    ],
)
def test_wrong_type(overrides: dict[str, Any], reason: str) -> None:
    assert reason_of(raw(**overrides)) == reason


def test_wrong_type_for_a_non_object() -> None:
    assert reason_of(b"[1, 2]") == "wrong_type: Expected `object`, got `array`"


@pytest.mark.parametrize("field", ["site_id", "building_id", "room_id", "asset_id", "ts", "on"])
def test_missing_field(field: str) -> None:
    record = wire()
    del record[field]
    assert reason_of(json.dumps(record).encode()) == f"missing: {field}"


@pytest.mark.parametrize("field", ["site_id", "building_id", "room_id", "asset_id"])
def test_empty_id_is_missing(field: str) -> None:
    assert reason_of(raw(**{field: ""})) == f"missing: {field}"


@pytest.mark.parametrize("field", ["power_w", "voltage_v", "current_a", "lux"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite(field: str, literal: str) -> None:
    data = raw(**{field: 0.25}).replace(b"0.25", literal.encode())
    assert reason_of(data) == f"nan: {field}"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"power_w": -0.001}, "negative_power"),
        ({"v": 3}, "bad_version"),
        ({"v": 0}, "bad_version"),
        ({"dim_level": 101}, "bad_dim_level"),
        ({"dim_level": -1}, "bad_dim_level"),
        ({"ts": "yesterday"}, "bad_ts"),
        ({"ts": "2026-11-28T13:00:00.123"}, "bad_ts"),
        ({"ts": "2026-02-29T13:00:00.123Z"}, "bad_ts"),
        ({"ts": "2026-11-28T24:00:00.000Z"}, "bad_ts"),
        ({"ts": ""}, "bad_ts"),
    ],
)
def test_value_rules(overrides: dict[str, Any], reason: str) -> None:
    assert reason_of(raw(**overrides)) == reason


def test_zero_power_and_dim_bounds_are_valid() -> None:
    assert decode_reading(raw(power_w=0.0, dim_level=0), ARRIVAL_MS).power_w == 0.0
    assert decode_reading(raw(dim_level=100), ARRIVAL_MS).dim_level == 100


def test_future_ts_is_relative_to_arrival_not_wall_clock() -> None:
    fifteen_minutes_ms = 15 * 60_000
    assert decode_reading(raw(), TS_MS - fifteen_minutes_ms).ts_ms == TS_MS
    assert reason_of(raw(), TS_MS - fifteen_minutes_ms - 1) == "future_ts"
    # Old data replayed years later is not "future".
    assert decode_reading(raw(), TS_MS + 10 * 365 * 86_400_000).ts_ms == TS_MS


def test_checks_run_in_documented_order() -> None:
    assert reason_of(raw(v=3, site_id="", power_w=-1.0)) == "bad_version"
    assert reason_of(raw(site_id="", power_w=-1.0)) == "missing: site_id"
    assert reason_of(raw(power_w=-1.0, dim_level=500, ts="x")) == "negative_power"
    assert reason_of(raw(dim_level=500, ts="x")) == "bad_dim_level"
    assert reason_of(raw(ts="x"), arrival_ms=0) == "bad_ts"


def test_readings_share_one_copy_of_each_id() -> None:
    first = decode_reading(raw(asset_id="lamp-shared"), ARRIVAL_MS)
    second = decode_reading(raw(asset_id="lamp-shared", power_w=1.0), ARRIVAL_MS)
    for field in ("site_id", "building_id", "room_id", "asset_id"):
        assert getattr(first, field) is getattr(second, field)


def test_the_shared_ids_start_over_past_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "MAX_SHARED_IDS", 8)
    readings = [
        decode_reading(raw(asset_id=f"lamp-{n}", room_id=f"r-{n % 3}"), ARRIVAL_MS)
        for n in range(50)
    ]
    assert [r.asset_id for r in readings] == [f"lamp-{n}" for n in range(50)]
    assert [r.room_id for r in readings] == [f"r-{n % 3}" for n in range(50)]
    assert len(telemetry._shared_ids) <= 8 + 4
