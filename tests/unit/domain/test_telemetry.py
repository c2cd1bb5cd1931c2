"""Decoding telemetry: good records, every rejection reason, encode round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import telemetry
from domain.ids import ID_PATTERN
from domain.telemetry import (
    DEFAULT_MAX_SKEW_MS,
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
        v=1,
        site_id="s",
        building_id="b",
        room_id="r",
        asset_id="a",
        ts="2026-11-28T13:00:00.123Z",
        power_w=1.0,
        voltage_v=2.0,
        current_a=3.0,
        lux=4.0,
        on=True,
        dim_level=5,
    )
    assert b"fault_code" not in encode_telemetry(telemetry)


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{", b'{"v": 1, "power_w": NaNx}', b'"\\ud800"'],
)
def test_not_json(data: bytes) -> None:
    assert reason_of(data) == "not_json"


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", raw(asset_id="lamp-\udcff").replace(b"\\udcff", b"\xff")]
)
def test_not_utf8(data: bytes) -> None:
    assert reason_of(data) == "not_utf8"


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
        ({"power_w": "42"}, "bad_type: Expected `float`, got `str` - at `$.power_w`"),
        ({"on": 1}, "bad_type: Expected `bool`, got `int` - at `$.on`"),
        ({"dim_level": 50.5}, "bad_type: Expected `int`, got `float` - at `$.dim_level`"),
        ({"site_id": 7}, "bad_type: Expected `str`, got `int` - at `$.site_id`"),
        ({"fault_code": 3}, "bad_type: Expected `str | null`, got `int` - at `$.fault_code`"),
        ({"ts": 1795870800123}, "bad_type: Expected `str`, got `int` - at `$.ts`"),
    ],
)
def test_wrong_type(overrides: dict[str, Any], reason: str) -> None:
    assert reason_of(raw(**overrides)) == reason


def test_wrong_type_for_a_non_object() -> None:
    assert reason_of(b"[1, 2]") == "bad_type: Expected `object`, got `array`"


@pytest.mark.parametrize("field", ["site_id", "building_id", "room_id", "asset_id", "ts", "on"])
def test_missing_field(field: str) -> None:
    record = wire()
    del record[field]
    assert reason_of(json.dumps(record).encode()) == f"missing_field: {field}"


@pytest.mark.parametrize("field", ["site_id", "building_id", "room_id", "asset_id"])
def test_empty_id_is_missing(field: str) -> None:
    assert reason_of(raw(**{field: ""})) == f"missing_field: {field}"


@pytest.mark.parametrize("field", ["power_w", "voltage_v", "current_a", "lux"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite(field: str, literal: str) -> None:
    data = raw(**{field: 0.25}).replace(b"0.25", literal.encode())
    assert reason_of(data) == f"bad_value: {field}"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_nan_or_infinite_energy_counter_is_a_bad_value_as_the_other_floats_are(
    literal: str,
) -> None:
    data = raw(v=2, energy_wh=0.25).replace(b"0.25", literal.encode())
    assert reason_of(data) == "bad_value: energy_wh"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"power_w": -0.001}, "bad_value: power_w"),
        ({"v": 3}, "unknown_schema: v=3"),
        ({"v": 0}, "unknown_schema: v=0"),
        ({"dim_level": 101}, "bad_value: dim_level"),
        ({"dim_level": -1}, "bad_value: dim_level"),
        ({"ts": "yesterday"}, "bad_ts: unparsable"),
        ({"ts": "2026-11-28T13:00:00.123"}, "bad_ts: unparsable"),
        ({"ts": "2026-02-29T13:00:00.123Z"}, "bad_ts: unparsable"),
        ({"ts": "2026-11-28T24:00:00.000Z"}, "bad_ts: unparsable"),
        ({"ts": ""}, "bad_ts: unparsable"),
        ({"ts": "2026-11-28T13:00:00Z\u0000 trailing"}, "bad_ts: unparsable"),
        ({"ts": "2026-11-28T13:00:00\u001fZ"}, "bad_ts: unparsable"),
    ],
)
def test_value_rules(overrides: dict[str, Any], reason: str) -> None:
    assert reason_of(raw(**overrides)) == reason


def test_zero_power_and_dim_bounds_are_valid() -> None:
    assert decode_reading(raw(power_w=0.0, dim_level=0), ARRIVAL_MS).power_w == 0.0
    assert decode_reading(raw(dim_level=100), ARRIVAL_MS).dim_level == 100


def test_a_fast_clock_is_judged_by_arrival_not_wall_clock() -> None:
    allowance_ms = DEFAULT_MAX_SKEW_MS
    assert decode_reading(raw(), TS_MS - allowance_ms).ts_ms == TS_MS
    assert reason_of(raw(), TS_MS - allowance_ms - 1) == "clock_skew: more than 120s ahead"
    assert reason_of(raw(), TS_MS - 14 * 60_000) == "clock_skew: more than 120s ahead"


@given(skew_ms=st.integers(-3_600_000, 3_600_000), allowance_ms=st.integers(0, 900_000))
def test_a_reading_is_believed_exactly_when_its_clock_is_within_the_allowance(
    skew_ms: int, allowance_ms: int
) -> None:
    # A device `skew_ms` fast (negative: slow) whose reading reached the stream at once.
    arrival_ms = TS_MS - skew_ms
    if skew_ms <= allowance_ms:
        assert decode_reading(raw(), arrival_ms, max_skew_ms=allowance_ms).ts_ms == TS_MS
    else:
        with pytest.raises(InvalidTelemetry) as caught:
            decode_reading(raw(), arrival_ms, max_skew_ms=allowance_ms)
        assert str(caught.value) == f"clock_skew: more than {allowance_ms // 1000}s ahead"


def test_ancient_ts_is_relative_to_arrival_not_wall_clock() -> None:
    year_ms = 365 * 86_400_000
    # A replay years later sees the original arrival time: the same decision.
    assert decode_reading(raw(), TS_MS + year_ms).ts_ms == TS_MS
    assert reason_of(raw(), TS_MS + year_ms + 1) == "bad_ts: ancient"
    assert reason_of(raw(ts="1970-01-01T00:00:00.000Z")) == "bad_ts: ancient"


def test_checks_run_in_documented_order() -> None:
    assert reason_of(raw(v=3, site_id="", power_w=-1.0)) == "unknown_schema: v=3"
    assert reason_of(raw(site_id="", power_w=-1.0)) == "missing_field: site_id"
    assert reason_of(raw(asset_id="a#b", power_w=-1.0)) == "bad_id: asset_id"
    assert reason_of(raw(power_w=-1.0, dim_level=500, ts="x")) == "bad_value: power_w"
    assert reason_of(raw(dim_level=500, ts="x")) == "bad_value: dim_level"
    assert reason_of(raw(ts="x"), arrival_ms=0) == "bad_ts: unparsable"


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


@pytest.mark.parametrize("field", ["site_id", "building_id", "room_id", "asset_id", "fault_code"])
@pytest.mark.parametrize(
    "bad",
    ["a#b", "a\x00b", "a\nb", "a b", "x" * 129, "x" * 3_000, "lämp", "a/b", "a.b", "\u200b"],
)
def test_ids_outside_the_grammar_are_bad_ids(field: str, bad: str) -> None:
    assert reason_of(raw(**{field: bad})) == f"bad_id: {field}"


def test_ids_of_the_whole_alphabet_and_128_characters_are_valid() -> None:
    longest = "A" * 128
    reading = decode_reading(
        raw(site_id="Az09:_-", building_id=longest, fault_code="E:42_x-1"), ARRIVAL_MS
    )
    assert (reading.site_id, reading.building_id, reading.fault_code) == (
        "Az09:_-",
        longest,
        "E:42_x-1",
    )


def test_a_missing_or_null_version_is_read_as_version_1_and_counted() -> None:
    record = wire()
    del record["v"]
    before = telemetry.counters.missing_version
    assert decode_reading(json.dumps(record).encode(), ARRIVAL_MS) == decode_reading(
        raw(), ARRIVAL_MS
    )
    assert decode_reading(raw(v=None), ARRIVAL_MS).asset_id == "lamp-1"
    assert telemetry.counters.missing_version == before + 2


@pytest.mark.parametrize("v", ['"1"', "true", "1.0"])
def test_a_version_of_the_wrong_type_is_bad_type(v: str) -> None:
    assert reason_of(raw().replace(b'"v": 1', b'"v": ' + v.encode())).startswith("bad_type: ")


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 6_000 + b"]" * 6_000,  # 12 KB of nested arrays
        b'{"v": 1, "extra": ' + b"[" * 6_000 + b"]" * 6_000 + b"}",
        b'{"extra": ' + b'{"a": ' * 2_000 + b"1" + b"}" * 2_000 + b"}",
        b"[" * 60_000,
    ],
)
def test_deep_nesting_is_too_deep(data: bytes) -> None:
    assert reason_of(data) == "too_deep"


def test_shallow_nesting_in_unknown_fields_is_ignored() -> None:
    data = raw(extra=[[[[{"a": [1]}]]]])
    assert decode_reading(data, ARRIVAL_MS).asset_id == "lamp-1"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert reason_of(b'["' + b"[" * 5_000 + b'"]') == "bad_type: Expected `object`, got `array`"


def test_huge_numbers_are_bad_values() -> None:
    assert reason_of(raw(dim_level=10**30)) == "bad_value: dim_level"
    assert reason_of(raw().replace(b'"lux": 310.0', b'"lux": 1e400')) == "bad_value: lux"


def test_a_long_timestamp_is_unparsable_without_parsing_it() -> None:
    assert reason_of(raw(ts="2026-11-28T13:00:00." + "1" * 10_000 + "Z")) == "bad_ts: unparsable"


def test_any_unexpected_exception_becomes_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(_data: bytes) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(telemetry, "_decoder", type("D", (), {"decode": staticmethod(explode)}))
    assert reason_of(raw()) == "decode_error: KeyError"


def test_every_reason_code_is_stable_and_documented() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "input-validation.md").read_text()
    for code in telemetry.DECODE_REASONS:
        assert f"`{code}`" in doc, code


# -- the ids the IoT rule adds: the topic's site and asset, the client id ---------------------

RULE_FIELDS = {"topic_site_id": "site-1", "topic_asset_id": "lamp-1", "client_id": "lamp-1"}


def test_a_reading_whose_ids_agree_with_its_topic_and_client_id_decodes_as_without_them() -> None:
    assert decode_reading(raw(**RULE_FIELDS), ARRIVAL_MS) == decode_reading(raw(), ARRIVAL_MS)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("topic_site_id", "site-2", "topic_mismatch: site_id"),
        ("topic_asset_id", "lamp-2", "topic_mismatch: asset_id"),
        ("client_id", "lamp-2", "topic_mismatch: client_id"),
        ("topic_site_id", "", "topic_mismatch: site_id"),
        ("client_id", "LAMP-1", "topic_mismatch: client_id"),
    ],
)
def test_a_payload_claiming_ids_other_than_its_topic_or_client_is_topic_mismatch(
    field: str, value: str, reason: str
) -> None:
    assert reason_of(raw(**{**RULE_FIELDS, field: value})) == reason


def test_bad_ids_are_reported_before_a_topic_mismatch() -> None:
    assert reason_of(raw(asset_id="lamp#1", **RULE_FIELDS)) == "bad_id: asset_id"


def test_the_rule_fields_survive_the_wire_when_set() -> None:
    reading = decode_reading(raw(), ARRIVAL_MS)
    encoded = encode_telemetry(msgspec.structs.replace(telemetry_of(reading), **RULE_FIELDS))
    assert json.loads(encoded)["client_id"] == "lamp-1"
    assert decode_reading(encoded, ARRIVAL_MS) == reading
    assert b"client_id" not in encode_reading(reading)


IDS = st.sampled_from(["site-1", "site-2", "lamp-1", "lamp-2", "x"])


@given(
    site=IDS,
    asset=IDS,
    topic_site=st.none() | IDS,
    topic_asset=st.none() | IDS,
    client=st.none() | IDS,
)
def test_a_reading_decodes_only_if_every_id_the_rule_added_agrees_with_the_payload(
    site: str, asset: str, topic_site: str | None, topic_asset: str | None, client: str | None
) -> None:
    added = {"topic_site_id": topic_site, "topic_asset_id": topic_asset, "client_id": client}
    data = raw(site_id=site, asset_id=asset, **{k: v for k, v in added.items() if v is not None})
    disagreeing = [
        name
        for name, claimed, payload in (
            ("site_id", topic_site, site),
            ("asset_id", topic_asset, asset),
            ("client_id", client, asset),
        )
        if claimed is not None and claimed != payload
    ]
    if not disagreeing:
        reading = decode_reading(data, ARRIVAL_MS)
        assert (reading.site_id, reading.asset_id) == (site, asset)
    else:
        assert reason_of(data) == f"topic_mismatch: {disagreeing[0]}"


# -- a field that says who the reading is from, given twice ---------------------------------

IDENTITY_VALUES = {
    "site_id": "site-1",
    "building_id": "b-1",
    "room_id": "r-1",
    "asset_id": "lamp-1",
    **RULE_FIELDS,
}


def with_repeated(field: str, value: str, *, escaped: bool = False, first: bool = False) -> bytes:
    """A valid reading (with the rule's fields) naming `field` a second time, as `value`."""
    body = raw(**RULE_FIELDS)
    name = field.replace("_", "\\u005f") if escaped else field
    extra = f'"{name}": {json.dumps(value)}'.encode()
    if first:
        return b"{" + extra + b", " + body[1:]
    return body[:-1] + b", " + extra + b"}"


@pytest.mark.parametrize("field", sorted(IDENTITY_VALUES))
@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("first", [False, True])
def test_a_reading_naming_an_identity_field_twice_is_refused(
    field: str, escaped: bool, first: bool
) -> None:
    # Parsers disagree on which of two equal keys counts (the IoT rule's, ours, a replay
    # tool's): a reading that says twice who it is from is ambiguous, whichever the values.
    assert reason_of(with_repeated(field, "other-1", escaped=escaped, first=first)) == (
        f"duplicate_field: {field}"
    )
    assert reason_of(with_repeated(field, IDENTITY_VALUES[field])) == f"duplicate_field: {field}"


def test_a_repeated_rule_field_cannot_hide_behind_a_null() -> None:
    data = raw(**RULE_FIELDS)[:-1] + b', "client_id": null}'
    assert reason_of(data) == "duplicate_field: client_id"


@pytest.mark.parametrize(
    "overrides",
    [
        {"room_id": "meeting_id", "building_id": "b_id"},
        {"gateway_id": "gw-1", "note": "asset_id"},
        {"note": "caf\u00e9"},  # an escape elsewhere in the record
    ],
)
def test_ids_and_other_fields_that_merely_look_like_id_keys_still_decode(
    overrides: dict[str, Any],
) -> None:
    reading = decode_reading(raw(**RULE_FIELDS, **overrides), ARRIVAL_MS)
    assert reading.asset_id == "lamp-1"


@given(
    st.sampled_from(sorted(IDENTITY_VALUES)),
    st.from_regex(ID_PATTERN, fullmatch=True),
    st.booleans(),
    st.booleans(),
)
def test_any_identity_field_repeated_with_any_id_is_refused(
    field: str, value: str, escaped: bool, first: bool
) -> None:
    assert reason_of(with_repeated(field, value, escaped=escaped, first=first)) == (
        f"duplicate_field: {field}"
    )
