"""Usage at every level and window: scopes, roll-ups, coverage, keys."""

from __future__ import annotations

import pytest

from core.clock import DAY_MS, HOUR_MS
from domain.events import UsageReport
from domain.usage import (
    UsageScope,
    asset_counts,
    roll_up,
    scope_of_key,
    scopes_of,
    usage_report_of,
)
from domain.views import command_writes, time_points


def asset_hour(asset: str, room: str, hour: int, kwh: float, covered_ms: int) -> UsageReport:
    return UsageReport(
        "s",
        "b",
        room,
        asset,
        hour * HOUR_MS,
        (hour + 1) * HOUR_MS,
        kwh,
        covered_ms,
        covered_ms / HOUR_MS,
    )


def test_scopes_and_keys_round_trip() -> None:
    scopes = scopes_of("s", "b", "r", "a")
    assert [s.level for s in scopes] == ["asset", "room", "building", "site"]
    assert scopes[1] == UsageScope("room", "s", "b", "r")
    assert scopes[2].key == "building|s|b||"
    for scope in scopes:
        assert scope_of_key(scope.key) == scope
    with pytest.raises(ValueError):
        scope_of_key("floor|s|b||")


def test_a_silent_asset_lowers_room_coverage_not_energy() -> None:
    counts = asset_counts([("s", "b", "r", "a1"), ("s", "b", "r", "a2")])
    assert counts["room|s|b|r|"] == 2
    assert counts["site|s|||"] == 2
    reports = [asset_hour("a1", "r", 0, 0.5, HOUR_MS)]  # a2 sent nothing
    [room] = roll_up(reports, window_ms=HOUR_MS, levels=["room"], counts=counts)
    assert (room.level, room.kwh, room.coverage) == ("room", 0.5, 0.5)
    assert room.asset_id == ""


def test_daily_roll_up_of_hours_at_every_level() -> None:
    reports = [
        asset_hour(a, r, h, 0.1, HOUR_MS)
        for h in range(24)
        for a, r in (("a1", "r1"), ("a2", "r1"), ("a3", "r2"))
    ]
    daily = roll_up(reports, window_ms=DAY_MS)
    by_level = {(d.level, d.asset_id or d.room_id or d.building_id or d.site_id): d for d in daily}
    assert len(daily) == 3 + 2 + 1 + 1
    assert by_level["asset", "a1"].kwh == pytest.approx(2.4)
    assert by_level["room", "r1"].kwh == pytest.approx(4.8)
    assert by_level["site", "s"].kwh == pytest.approx(7.2)
    assert all(d.coverage == pytest.approx(1.0) and d.window_ms == DAY_MS for d in daily)
    with pytest.raises(ValueError):
        roll_up(daily, window_ms=DAY_MS)  # only asset-level input


def test_usage_identity_and_keys_carry_level_and_window() -> None:
    room_day = usage_report_of(
        UsageScope("room", "s", "b", "r"),
        window_start_ms=0,
        window_ms=DAY_MS,
        wh=1000.0,
        covered_ms=DAY_MS,
        asset_count=2,
    )
    room_hour = usage_report_of(
        UsageScope("room", "s", "b", "r"),
        window_start_ms=0,
        window_ms=HOUR_MS,
        wh=10.0,
        covered_ms=HOUR_MS,
    )
    asset_day = usage_report_of(
        UsageScope("asset", "s", "b", "r", "a"),
        window_start_ms=0,
        window_ms=DAY_MS,
        wh=1.0,
        covered_ms=DAY_MS,
    )
    assert room_day.coverage == 0.5
    assert len({room_day.event_id, room_hour.event_id, asset_day.event_id}) == 3
    [write] = command_writes(room_day)
    assert (write.item["pk"], write.item["sk"]) == ("USAGE#s#b#r", "room#1d#0000000000000#r")
    assert write.item["window_ms"] == DAY_MS
    [asset_write] = command_writes(asset_day)
    assert asset_write.item["pk"] == "USAGE#s#b#r"  # the room's day is one Query
    building = usage_report_of(
        UsageScope("building", "s", "b"),
        window_start_ms=0,
        window_ms=HOUR_MS,
        wh=1.0,
        covered_ms=1,
    )
    assert command_writes(building)[0].item["pk"] == "USAGE#s#b"
    [point] = time_points(room_day)
    assert point.measure_name == "usage_1d"
    assert point.dimensions == {"site": "s", "building": "b", "room": "r", "level": "room"}
    [hour_point] = time_points(room_hour)
    assert hour_point.measure_name == "usage"
