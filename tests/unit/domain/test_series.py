"""domain.series: the accumulator against a direct computation, the interval rule, names."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.series import (
    HOUR_MS,
    SERIES_METRICS,
    TelemetryRollup,
    check_interval_ms,
    direct_rollups,
    measure_name,
    rollup_of,
    series_tier,
)
from domain.series_acc import SeriesAcc
from domain.telemetry import Reading
from domain.views import command_writes, time_points

START_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS

values = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)


@st.composite
def readings(draw: st.DrawFn) -> list[Reading]:
    count = draw(st.integers(min_value=0, max_value=60))
    out = []
    for _ in range(count):
        out.append(
            Reading(
                "site-1",
                "b-1",
                draw(st.sampled_from(["r-1", "r-2"])),
                draw(st.sampled_from(["lamp-1", "lamp-2", "lamp-3"])),
                START_MS + draw(st.integers(min_value=0, max_value=3 * HOUR_MS)),
                draw(values),
                draw(values),
                draw(values),
                draw(values),
                draw(st.booleans()),
                draw(st.integers(min_value=0, max_value=100)),
            )
        )
    return out


def accumulated(rs: list[Reading], window_ms: int) -> dict[tuple[str, int], TelemetryRollup]:
    """What the agent does, without the app: the rules' gate, then one accumulator per
    (asset, window)."""
    accs: dict[tuple[str, int], SeriesAcc] = {}
    newest: dict[str, int] = {}
    for r in rs:
        if r.asset_id in newest and r.ts_ms <= newest[r.asset_id]:
            continue
        newest[r.asset_id] = r.ts_ms
        key = (r.asset_id, r.ts_ms - r.ts_ms % window_ms)
        accs[key] = accs.get(key, SeriesAcc()) + r
    return {key: rollup_of(key[0], key[1], window_ms, acc) for key, acc in accs.items()}


def assert_same_rollups(
    got: dict[tuple[str, int], TelemetryRollup], want: dict[tuple[str, int], TelemetryRollup]
) -> None:
    """Equal, with the means to float rounding (a running sum against `math.fsum`)."""
    assert sorted(got) == sorted(want)
    for key, rollup in want.items():
        other = got[key]
        assert (other.site_id, other.room_id, other.readings, other.last_ts_ms) == (
            rollup.site_id,
            rollup.room_id,
            rollup.readings,
            rollup.last_ts_ms,
        )
        assert other.on_fraction == rollup.on_fraction
        assert sorted(other.stats) == sorted(rollup.stats)
        for name, value in rollup.stats.items():
            if name.endswith("_mean"):
                assert math.isclose(other.stats[name], value, rel_tol=1e-9, abs_tol=1e-9), name
            else:
                assert other.stats[name] == value, name


@given(readings(), st.sampled_from([1_000, 60_000, 300_000, 900_000]))
def test_the_accumulated_rollups_equal_a_direct_computation(
    rs: list[Reading], interval_ms: int
) -> None:
    assert_same_rollups(accumulated(rs, interval_ms), direct_rollups(rs, interval_ms))
    assert_same_rollups(accumulated(rs, HOUR_MS), direct_rollups(rs, HOUR_MS))


@given(readings())
def test_a_duplicated_or_reordered_reading_changes_no_rollup(rs: list[Reading]) -> None:
    in_order = sorted(rs, key=lambda r: r.ts_ms)
    again = [r for r in in_order for _ in range(2)]  # every reading delivered twice
    assert accumulated(again, 60_000) == accumulated(in_order, 60_000)


def test_a_rollup_is_one_series_point_and_no_command_item() -> None:
    acc = SeriesAcc()
    for second, power in ((0, 10.0), (20, 30.0), (40, 20.0)):
        acc + Reading(
            "s", "b", "r", "a", START_MS + second * 1000, power, 230.0, 0.1, 5.0, second < 40, 50
        )
    rollup = rollup_of("a", START_MS, 60_000, acc)
    assert (rollup.readings, rollup.on_fraction) == (3, 2 / 3)
    assert [rollup.stats[f"power_w_{s}"] for s in ("mean", "min", "max", "last")] == [
        20.0,
        10.0,
        30.0,
        20.0,
    ]
    (point,) = time_points(rollup)
    assert (point.table, point.measure_name, point.time_ms) == ("series", "telemetry_1m", START_MS)
    assert point.dimensions == {"site": "s", "building": "b", "room": "r", "asset": "a"}
    assert len(point.measures) == 3 + 4 * len(SERIES_METRICS)
    assert command_writes(rollup) == []


@pytest.mark.parametrize("interval_ms", [0, 999, 1_500, 7_000, HOUR_MS, 2 * HOUR_MS, -60_000])
def test_an_interval_that_does_not_divide_the_hour_is_refused(interval_ms: int) -> None:
    with pytest.raises(ValueError, match="dividing the hour"):
        check_interval_ms(interval_ms)


def test_interval_names_and_tiers() -> None:
    assert [measure_name(ms) for ms in (10_000, 60_000, 300_000, HOUR_MS)] == [
        "telemetry_10s",
        "telemetry_1m",
        "telemetry_5m",
        "telemetry_1h",
    ]
    assert (series_tier(60_000), series_tier(HOUR_MS)) == ("hot", "cold")
