"""`luxflow query` after a simulated run through the worker into DynamoDB (moto) and InfluxDB
(a real influxd): every result equals the simulator's ground truth."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.clock import DAY_MS, HOUR_MS
from domain.deadband import DEFAULT_DEADBAND, next_written
from domain.events import AssetState
from domain.rules import WrittenState, asset_state
from domain.timestamps import format_ts
from tests.support.influx import SimulatedRun, close, influx_client, stored_points

pytestmark = [pytest.mark.integration, pytest.mark.influx]


def query(run: SimulatedRun, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        run.deployment.luxflow("query", *args, "--format", "json").stdout
    )
    return rows


def test_open_faults_of_every_building_equal_the_ground_truth(influx_run: SimulatedRun) -> None:
    expected = influx_run.open_faults()
    assert expected
    for (site, building), faults in expected.items():
        rows = query(influx_run, "faults", "--site", site, "--building", building)
        assert {(r["asset_id"], r["code"], r["opened_at_ms"]) for r in rows} == faults
        assert all(r["status"] == "open" and r["cleared_at_ms"] is None for r in rows)


def test_spikes_of_every_site_equal_the_ground_truth(influx_run: SimulatedRun) -> None:
    since = format_ts(influx_run.params.start_ms)
    expected = influx_run.spikes()
    assert sum(len(v) for v in expected.values()) == influx_run.params.spike_count
    for site in sorted({a.site_id for a in influx_run.simulation.assets}):
        rows = query(influx_run, "spikes", "--site", site, "--since", since)
        assert {(r["asset_id"], r["started_at_ms"], r["ended_at_ms"]) for r in rows} == expected[
            site
        ]
        starts = [r["started_at_ms"] for r in rows]
        assert starts == sorted(starts, reverse=True)


def test_asset_state_is_the_last_reading(influx_run: SimulatedRun) -> None:
    # The stored current state is the last one the default deadband chose to write.
    written: dict[str, WrittenState] = {}
    last: dict[str, AssetState] = {}
    for reading in influx_run.simulation.readings():
        state = asset_state(reading)
        chosen = next_written(written.get(reading.asset_id), state, DEFAULT_DEADBAND)
        if chosen is not None:
            written[reading.asset_id] = chosen
            last[reading.asset_id] = state
    for asset_id in sorted(last)[:3]:
        [row] = query(influx_run, "asset", asset_id)
        assert row["ts_ms"] == last[asset_id].ts_ms
        assert row["power_w"] == pytest.approx(last[asset_id].power_w)
    assert query(influx_run, "asset", "no-such-asset") == []


@pytest.mark.parametrize(
    ("scope", "every"), [("site", "1h"), ("site", "1d"), ("building", "1h"), ("room", "1h")]
)
def test_energy_equals_the_ground_truth(influx_run: SimulatedRun, scope: str, every: str) -> None:
    start, end = influx_run.range_ms
    rows = query(
        influx_run,
        "energy",
        "--scope",
        scope,
        "--every",
        every,
        "--start",
        format_ts(start),
        "--end",
        format_ts(end),
    )
    depth = {"site": 1, "building": 2, "room": 3}[scope]
    got = {
        (*(r["site_id"], r["building_id"], r["room_id"])[:depth], str(r["window_start_ms"])): r[
            "kwh"
        ]
        for r in rows
    }
    expected = influx_run.energy(scope, HOUR_MS if every == "1h" else DAY_MS)
    assert got.keys() == expected.keys()
    assert close(got, expected) == {}


def test_energy_filtered_to_one_room_in_csv(influx_run: SimulatedRun) -> None:
    asset = influx_run.simulation.assets[0]
    start, end = influx_run.range_ms
    out = influx_run.deployment.luxflow(
        "query", "energy", "--scope", "room", "--site", asset.site_id, "--building",
        asset.building_id, "--room", asset.room_id, "--start", format_ts(start), "--end",
        format_ts(end), "--format", "csv",
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == "scope,site_id,building_id,room_id,every,window_start_ms,kwh"
    expected = {
        k: v
        for k, v in influx_run.energy("room", HOUR_MS).items()
        if k[:3] == (asset.site_id, asset.building_id, asset.room_id)
    }
    cells = [line.split(",") for line in out[1:]]
    got = {(c[1], c[2], c[3], c[5]): float(c[6]) for c in cells}
    assert got.keys() == expected.keys()
    assert close(got, expected) == {}


def test_fleet_summary_counts_buildings_assets_open_faults_and_spikes(
    influx_run: SimulatedRun,
) -> None:
    rows = query(influx_run, "fleet")
    sites = sorted({a.site_id for a in influx_run.simulation.assets})
    assert [r["site_id"] for r in rows] == sites
    spikes = influx_run.spikes()
    faults = influx_run.open_faults()
    for row in rows:
        site = row["site_id"]
        assets = [a for a in influx_run.simulation.assets if a.site_id == site]
        assert row["assets"] == len(assets)
        assert row["buildings"] == len({a.building_id for a in assets})
        assert row["open_faults"] == sum(len(v) for k, v in faults.items() if k[0] == site)
        # Spikes that started in the last day: the whole (2 h) run.
        assert row["spikes_last_day"] == len(spikes[site])


def test_table_format_shows_times_in_iso(influx_run: SimulatedRun) -> None:
    site, building = next(iter(influx_run.open_faults()))
    lines = influx_run.deployment.luxflow(
        "query", "faults", "--site", site, "--building", building
    ).stdout.splitlines()
    # ISO times under headers without the `_ms` of the raw field (`--format json` keeps it).
    assert lines[0].split() == [
        "site_id", "building_id", "room_id", "asset_id", "code", "opened_at", "status",
        "cleared_at", "event_id",
    ]  # fmt: skip
    assert len(lines) == 1 + len(influx_run.open_faults()[(site, building)])
    assert all("offline" in line and "Z" in line for line in lines[1:])


def test_a_wrong_building_id_says_what_was_searched_and_which_buildings_exist(
    influx_run: SimulatedRun,
) -> None:
    site, building = next(iter(influx_run.open_faults()))
    result = influx_run.deployment.luxflow(
        "query", "faults", "--site", site, "--building", "no-such-building"
    )
    assert result.stdout == ""
    searched, hint = result.stderr.strip().splitlines()[-2:]
    assert searched == f"no open faults in building no-such-building of site {site}"
    assert hint.startswith(f"site {site} has no building no-such-building; its buildings: ")
    assert building in hint


def test_influxdb_holds_one_point_per_event_and_usage_report(influx_run: SimulatedRun) -> None:
    """The query model holds exactly the points the command model's events imply (a cleared
    fault was written once open and once cleared: both points are facts)."""
    import msgspec

    from domain.events import EnergySpike, Fault, UsageReport
    from domain.views import time_points
    from lighting.provision import events_of
    from sinks.influxdb import MEASURE_TAG

    items = influx_run.deployment.items()
    events: list[Any] = [
        *events_of(items, Fault, "fault"),
        *events_of(items, EnergySpike, "energy_spike"),
        *events_of(items, UsageReport, "usage_report"),
    ]
    events += [
        msgspec.structs.replace(f, status="open", cleared_at_ms=None)
        for f in events
        if isinstance(f, Fault) and f.status == "cleared"
    ]
    expected = {}
    for event in events:
        for point in time_points(event):
            tags = dict(point.dimensions, **{MEASURE_TAG: point.measure_name})
            expected[(point.table, tuple(sorted(tags.items())), point.time_ms)] = point.measures
    stored = stored_points(influx_client(influx_run.deployment))
    assert stored.keys() == expected.keys()
    assert stored == expected
