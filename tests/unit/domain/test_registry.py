"""Registry import: every bad row reported with its reason, good rows kept; limits."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.registry import (
    CSV_COLUMNS,
    OPTIONAL_COLUMNS,
    Asset,
    Registry,
    RegistryError,
    RejectedRow,
    SiteDefaults,
    encode_registry,
    limits_of,
    parse_csv,
    parse_json,
    site_limits_of,
)

CSV = """site_id,building_id,room_id,asset_id,kind,rated_w,nominal_voltage_v,spike_tolerance
s1,b1,r1,a1,luminaire,60,230,
s1,b1,r1,,luminaire,60,230,
s1,b1,r1,a3,lamp,60,230,
s1,b1,r1,a4,luminaire,0,230,
s1,b1,r1,a5,sensor,abc,230,
s1,b1,r1,a1,sensor,1,230,
s1,b1,r1,a7,gateway,5,-1,
s1,b1,r1,a8,luminaire,40,120,1.5
"""


def test_csv_import_reports_each_bad_row_and_keeps_the_good_ones() -> None:
    result = parse_csv(CSV)
    assert [a.asset_id for a in result.assets] == ["a1", "a8"]
    assert result.assets[1] == Asset("s1", "b1", "r1", "a8", "luminaire", 40.0, 120.0, 1.5)
    assert result.rejected == [
        RejectedRow(3, "missing asset_id"),
        RejectedRow(4, "unknown kind 'lamp' (expected one of luminaire, sensor, gateway)"),
        RejectedRow(5, "rated_w must be positive, got 0"),
        RejectedRow(6, "rated_w must be a number, got 'abc'"),
        RejectedRow(7, "duplicate asset_id 'a1' (first at 2)"),
        RejectedRow(8, "nominal_voltage_v must be positive, got -1"),
    ]


def test_csv_without_required_columns_is_refused_whole() -> None:
    with pytest.raises(RegistryError, match="kind, rated_w"):
        parse_csv("site_id,building_id,room_id,asset_id,nominal_voltage_v\ns,b,r,a,230\n")


def test_json_import_with_sites_and_bad_rows() -> None:
    data = b"""{"assets": [
        {"site_id": "s1", "building_id": "b", "room_id": "r", "asset_id": "a1",
         "kind": "luminaire", "rated_w": 50, "offline_after_ms": 60000},
        {"site_id": "s1", "building_id": "b", "room_id": "r", "asset_id": "a2",
         "kind": "luminaire"},
        {"site_id": "s1", "building_id": "b", "room_id": "r", "asset_id": "a3",
         "kind": "sensor", "rated_w": -2},
        "nonsense",
        {"site_id": "s1", "building_id": "b", "room_id": "r", "asset_id": "a5",
         "kind": "sensor", "rated_w": 1, "voltage_band": 2}
    ], "sites": [{"site_id": "s1", "demand_threshold_w": 5000}]}"""
    result = parse_json(data)
    assert [a.asset_id for a in result.assets] == ["a1"]
    assert result.assets[0].offline_after_ms == 60_000
    assert result.sites == [SiteDefaults("s1", demand_threshold_w=5000.0)]
    assert [(r.position, r.reason) for r in result.rejected] == [
        (1, "missing rated_w"),
        (2, "rated_w must be positive, got -2"),
        (3, "not an object"),
        (4, "voltage_band must be between 0 and 1, got 2"),
    ]


def test_json_round_trip_and_plain_array() -> None:
    assets = [Asset("s", "b", "r", "a", "gateway", 5.0)]
    sites = [SiteDefaults("s", demand_threshold_w=100.0)]
    result = parse_json(encode_registry(assets, sites))
    assert (result.assets, result.sites, result.rejected) == (assets, sites, [])
    assert (
        parse_json(
            b'[{"site_id":"s","building_id":"b","room_id":"r","asset_id":"a",'
            b'"kind":"gateway","rated_w":5}]'
        ).assets
        == assets
    )
    with pytest.raises(RegistryError):
        parse_json(b"{not json")


def test_limits_of_known_unknown_and_per_asset_overrides() -> None:
    site = SiteDefaults("s", default_rated_w=80.0, offline_after_ms=600_000)
    unknown = limits_of(None, site)
    assert unknown.spike_threshold_w == 80.0 * 1.25
    assert unknown.rated_w == 80.0
    assert unknown.offline_after_ms == 600_000
    assert unknown.flicker_toggles == 4
    lamp = Asset("s", "b", "r", "a", "luminaire", 40.0, 120.0, 1.5, 0.05, 120_000)
    limits = limits_of(lamp, site)
    assert limits.spike_threshold_w == 60.0
    assert (limits.nominal_voltage_v, limits.voltage_band, limits.offline_after_ms) == (
        120.0,
        0.05,
        120_000,
    )
    sensor = limits_of(Asset("s", "b", "r", "x", "sensor", 0.5), site)
    assert sensor.lamp_current_fraction is None
    assert sensor.flicker_toggles is None


def test_registry_lookup_falls_back_to_site_and_global_defaults() -> None:
    registry = Registry(
        [Asset("s", "b", "r", "a", "luminaire", 40.0)],
        [SiteDefaults("s", demand_threshold_w=900.0, default_rated_w=10.0)],
    )
    assert registry.limits("a", "s").rated_w == 40.0
    assert registry.limits("zz", "s").rated_w == 10.0
    assert registry.limits("zz", "other").rated_w == 100.0
    site = site_limits_of(registry.site("s"))
    assert site is not None and site.demand_threshold_w == 900.0
    # No fixed limit at "other", but the learnt hour-of-day baseline is on by default.
    other = site_limits_of(registry.site("other"))
    assert other is not None and other.demand_threshold_w is None
    assert other.baseline_factor == 1.5
    assert site_limits_of(SiteDefaults("x", demand_baseline_factor=None)) is None


@pytest.mark.parametrize("bad", ["a#b", "x" * 129, "a b", "lamp\n1"])
def test_rows_whose_ids_break_the_grammar_are_rejected(bad: str) -> None:
    imported = parse_json(
        msgspec.json.encode(
            [
                {
                    "site_id": "s",
                    "building_id": "b",
                    "room_id": "r",
                    "asset_id": bad,
                    "kind": "luminaire",
                    "rated_w": 10,
                },
                {
                    "site_id": "s",
                    "building_id": "b",
                    "room_id": "r",
                    "asset_id": "ok",
                    "kind": "luminaire",
                    "rated_w": 10,
                },
            ]
        )
    )
    assert [a.asset_id for a in imported.assets] == ["ok"]
    assert [r.position for r in imported.rejected] == [0]
    assert "breaks the id grammar" in imported.rejected[0].reason


def test_site_defaults_with_a_bad_site_id_are_refused() -> None:
    with pytest.raises(RegistryError, match="id grammar"):
        parse_json(b'{"assets": [], "sites": [{"site_id": "a#b"}]}')


# Site defaults become every rule's limits for the site's assets (all of them for an unknown
# asset): a value no rule can work with must be refused at import, naming the field, not
# found by the worker (nominal_voltage_v 0 made every reading of an unknown lamp of the site
# raise ZeroDivisionError in the agent and go to the dead letters).
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nominal_voltage_v", 0),
        ("nominal_voltage_v", -230),
        ("default_rated_w", 0),
        ("spike_tolerance", 1.0),
        ("voltage_band", 0),
        ("voltage_band", 1.5),
        ("lamp_current_fraction", -0.1),
        ("lamp_current_fraction", 2),
        ("power_accuracy", -0.01),
        ("counter_resolution_wh", -1),
        ("counter_resolution_wh", 2.2e152),  # its square overflowed in the energy split
        ("power_accuracy", 1.5),
        ("demand_threshold_w", 0),
        ("baseline_factor", -1.5),
        ("demand_baseline_factor", 0),
        ("offline_after_ms", 0),
        ("offline_after_ms", -900_000),
        ("retention_ms", -1),
        ("max_gap_ms", 0),
        ("flood_window_ms", 0),
        ("flicker_window_ms", -1),
        ("cooldown_ms", -1),
        ("min_spike_ms", -1),
        ("demand_min_spike_ms", -1),
        ("flicker_max_on_ms", -1),
        ("offline_after_ms", 10**20),
        ("flicker_toggles", 0),
        ("min_spike_readings", 0),
        ("flood_max_new_faults", -1),
    ],
)
def test_site_defaults_no_rule_can_work_with_are_refused_naming_the_field(
    field: str, value: float
) -> None:
    doc = msgspec.json.encode({"sites": [{"site_id": "s1", field: value}]})
    with pytest.raises(RegistryError, match=f"bad site defaults: s1: {field} "):
        parse_json(doc)


def test_site_defaults_at_their_bounds_are_kept() -> None:
    edges = {
        "spike_tolerance": 1.01,
        "voltage_band": 0.99,
        "lamp_current_fraction": 0.0,
        "power_accuracy": 0.0,
        "counter_resolution_wh": 0.0,
        "cooldown_ms": 0,
        "min_spike_ms": 0,
        "flood_max_new_faults": 0,
        "demand_threshold_w": None,
        "baseline_factor": None,
    }
    imported = parse_json(msgspec.json.encode({"sites": [{"site_id": "s1", **edges}]}))
    assert imported.sites == [SiteDefaults(site_id="s1", **edges)]  # type: ignore[arg-type]


def test_an_asset_offline_after_beyond_any_clock_is_rejected() -> None:
    row = {"site_id": "s", "building_id": "b", "room_id": "r", "asset_id": "a"}
    row |= {"kind": "luminaire", "rated_w": 60, "offline_after_ms": 1e20}
    imported = parse_json(msgspec.json.encode([row]))
    assert imported.assets == []
    assert "offline_after_ms" in imported.rejected[0].reason


# An import file is an operator's, and as untrusted as any input: whatever it holds, the result
# is good rows and rejected rows, or a RegistryError (one line from `luxflow registry import`),
# never another exception (a traceback).
@pytest.mark.parametrize(
    "text",
    [
        CSV.splitlines()[0] + "\ns1,b1,r1," + "a" * 200_000 + ",luminaire,60,230,\n",
        CSV.splitlines()[0] + '\ns1,b1,r1,"a\n',
    ],
)
def test_a_csv_file_the_reader_cannot_read_is_a_registry_error(text: str) -> None:
    try:
        imported = parse_csv(text)
    except RegistryError as exc:
        assert "\n" not in str(exc)
        return
    assert imported.assets == []


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b'{"assets": ' + b"[" * 5_000])
def test_a_json_file_nested_too_deeply_is_a_registry_error(data: bytes) -> None:
    with pytest.raises(RegistryError):
        parse_json(data)


def test_site_defaults_naming_a_field_that_does_not_exist_are_refused() -> None:
    # A typo would silently leave the site on the default it meant to change.
    with pytest.raises(RegistryError, match="s1: unknown field 'ofline_after_ms'"):
        parse_json(b'{"sites": [{"site_id": "s1", "ofline_after_ms": 60000}]}')


@given(st.text(max_size=300))
def test_any_csv_text_is_rows_or_a_registry_error(text: str) -> None:
    header = ",".join(CSV_COLUMNS)
    with contextlib.suppress(RegistryError):
        parse_csv(header + "\n" + text)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_json_bytes_are_rows_or_a_registry_error(data: bytes) -> None:
    with contextlib.suppress(RegistryError):
        parse_json(data)


JSON_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.sampled_from([10**400, -(10**400), 2**1024])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@given(
    st.dictionaries(
        st.sampled_from(["rated_w", "nominal_voltage_v", *OPTIONAL_COLUMNS, "kind", "asset_id"]),
        JSON_VALUES,
        min_size=1,
    )
)
def test_any_values_in_an_asset_row_reject_the_row_or_make_a_valid_asset(
    values: dict[str, object],
) -> None:
    row = {"site_id": "s", "building_id": "b", "room_id": "r", "asset_id": "a"}
    row |= {"kind": "luminaire", "rated_w": 60, **values}
    imported = parse_json(msgspec.json.encode([row]))
    assert len(imported.assets) + len(imported.rejected) == 1
