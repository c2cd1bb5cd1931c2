"""The telemetry series after a simulated run through `luxflow worker` into a real influxd: the
fine series (retention policy `series_hot`) equals a direct computation from the simulator's
readings, the hourly downsample (`series_cold`) equals the hourly aggregation of the fine
series, and `luxflow query series` and `GET /api/v1/series` return them within their bounds."""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from core.clock import HOUR_MS, MINUTE_MS
from domain.series import TelemetryRollup, direct_rollups
from domain.timestamps import format_ts
from lighting.influx import ensure_influxdb
from lighting.read.series import MAX_PAGE_ROWS, MAX_WINDOWS, STATS
from sinks.influxhttp import InfluxHTTP
from tests.support.deployment import ROOT
from tests.support.influx import SimulatedRun, influx_client
from tests.support.serve import get, serving

pytestmark = [pytest.mark.integration, pytest.mark.influx]

Key = tuple[str, int]


def stored_series(client: InfluxHTTP, rp: str) -> dict[Key, dict[str, Any]]:
    """Every point of one tier: (asset, time) -> its tags and fields."""
    points: dict[Key, dict[str, Any]] = {}
    for result in client.query(f'SELECT * FROM "{rp}"."series" GROUP BY *'):
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                key = (tags["asset"], int(row.pop("time")))
                assert key not in points
                points[key] = {**tags, **{k: v for k, v in row.items() if v is not None}}
    return points


@pytest.fixture(scope="module")
def fine(influx_run: SimulatedRun) -> dict[Key, dict[str, Any]]:
    return stored_series(influx_client(influx_run.deployment), "series_hot")


@pytest.fixture(scope="module")
def hourly(influx_run: SimulatedRun) -> dict[Key, dict[str, Any]]:
    return stored_series(influx_client(influx_run.deployment), "series_cold")


def assert_point_is(point: dict[str, Any], rollup: TelemetryRollup) -> None:
    assert (point["site"], point["building"], point["room"]) == (
        rollup.site_id,
        rollup.building_id,
        rollup.room_id,
    )
    assert (point["readings"], point["last_ts_ms"]) == (rollup.readings, rollup.last_ts_ms)
    assert point["on_fraction"] == rollup.on_fraction
    for name, value in rollup.stats.items():
        if name.endswith("_mean"):
            assert math.isclose(point[name], value, rel_tol=1e-9, abs_tol=1e-9), name
        else:
            assert point[name] == value, name


def test_the_retention_policies_hold_the_tiers(influx_run: SimulatedRun) -> None:
    client = influx_client(influx_run.deployment)
    [result] = client.query(f'SHOW RETENTION POLICIES ON "{client.database}"')
    policies = {v[0]: (v[1], v[4]) for v in result["series"][0]["values"]}
    assert policies["series_hot"] == ("168h0m0s", False)
    assert policies["series_cold"] == ("9600h0m0s", False)
    assert next(name for name, (_, default) in policies.items() if default) == "autogen"


def test_the_fine_series_equals_a_direct_computation_from_the_readings(
    influx_run: SimulatedRun, fine: dict[Key, dict[str, Any]]
) -> None:
    expected = direct_rollups(influx_run.simulation.readings(), MINUTE_MS)
    assert len(expected) > 1_000
    assert sorted(fine) == sorted(expected)
    for key, rollup in expected.items():
        assert fine[key]["measure"] == "telemetry_1m"
        assert_point_is(fine[key], rollup)


def test_the_hourly_downsample_equals_the_hourly_aggregation_of_the_fine_series(
    influx_run: SimulatedRun, fine: dict[Key, dict[str, Any]], hourly: dict[Key, dict[str, Any]]
) -> None:
    hours: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for (asset, t), point in sorted(fine.items()):
        hours[(asset, t - t % HOUR_MS)].append(point)
    assert sorted(hourly) == sorted(hours)
    for key, minutes in hours.items():
        got = hourly[key]
        n = sum(m["readings"] for m in minutes)
        assert (got["measure"], got["readings"]) == ("telemetry_1h", n)
        assert got["last_ts_ms"] == minutes[-1]["last_ts_ms"]
        weighted = sum(m["on_fraction"] * m["readings"] for m in minutes) / n
        assert math.isclose(got["on_fraction"], weighted, rel_tol=1e-9)
        for q in ("power_w", "voltage_v", "current_a", "lux", "dim_level"):
            mean = sum(m[f"{q}_mean"] * m["readings"] for m in minutes) / n
            assert math.isclose(got[f"{q}_mean"], mean, rel_tol=1e-9, abs_tol=1e-9), q
            assert got[f"{q}_min"] == min(m[f"{q}_min"] for m in minutes)
            assert got[f"{q}_max"] == max(m[f"{q}_max"] for m in minutes)
            assert got[f"{q}_last"] == minutes[-1][f"{q}_last"]
    # And against the readings themselves.
    expected = direct_rollups(influx_run.simulation.readings(), HOUR_MS)
    for key, rollup in expected.items():
        assert_point_is(hourly[key], rollup)


def _row_key(row: dict[str, Any]) -> Key:
    return row["asset_id"], row["window_start_ms"]


def _same_as_stored(rows: list[dict[str, Any]], stored: dict[Key, dict[str, Any]]) -> None:
    for row in rows:
        point = stored[_row_key(row)]
        assert (row["site_id"], row["room_id"], row["readings"]) == (
            point["site"],
            point["room"],
            point["readings"],
        )
        assert {name: row[name] for name in STATS} == {name: point[name] for name in STATS}


def test_luxflow_query_series_returns_an_assets_minutes_and_a_rooms_hours(
    influx_run: SimulatedRun, fine: dict[Key, dict[str, Any]], hourly: dict[Key, dict[str, Any]]
) -> None:
    start, end = influx_run.range_ms
    asset = sorted({a for a, _ in fine})[0]
    result = influx_run.deployment.luxflow(
        "query", "series", "--asset", asset, "--start", format_ts(start),
        "--end", format_ts(start + 10 * 24 * HOUR_MS), "--format", "json",
    )  # fmt: skip
    rows = json.loads(result.stdout)
    assert sorted(_row_key(r) for r in rows) == sorted(k for k in fine if k[0] == asset)
    assert [r["window_start_ms"] for r in rows] == sorted(r["window_start_ms"] for r in rows)
    _same_as_stored(rows, fine)

    some = next(iter(hourly.values()))
    result = influx_run.deployment.luxflow(
        "query", "series", "--scope", "room", "--site", some["site"], "--building",
        some["building"], "--room", some["room"], "--every", "1h", "--start", format_ts(start),
        "--end", format_ts(end), "--format", "csv",
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("site_id,building_id,room_id,asset_id,every,window_start_ms")
    room_keys = {k for k, p in hourly.items() if p["room"] == some["room"]}
    got = {(line.split(",")[3], int(line.split(",")[5])) for line in lines[1:]}
    assert got == room_keys
    assert len(lines) - 1 == len(room_keys)


def test_luxflow_query_series_refuses_a_range_beyond_its_bound(influx_run: SimulatedRun) -> None:
    start, _ = influx_run.range_ms
    result = influx_run.deployment.luxflow(
        "query", "series", "--asset", "x", "--start", format_ts(start),
        "--end", format_ts(start + (MAX_WINDOWS + 1) * MINUTE_MS), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "MAX_WINDOWS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def api(influx_run: SimulatedRun) -> Iterator[tuple[str, str]]:
    with serving(influx_run.deployment) as base:
        yield base, influx_run.deployment.env["LUXFLOW_API_TOKEN"]


def test_the_api_pages_through_a_sites_minutes_without_a_row_twice(
    api: tuple[str, str], influx_run: SimulatedRun, fine: dict[Key, dict[str, Any]]
) -> None:
    base, token = api
    start, end = influx_run.range_ms
    site = sorted({p["site"] for p in fine.values()})[0]
    expected = sorted(k for k, p in fine.items() if p["site"] == site)
    items: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {"scope": "site", "site_id": site, "start_ms": start, "end_ms": end}
        params |= {"limit": 997, **({"cursor": cursor} if cursor else {})}
        status, body = get(f"{base}/api/v1/series?{urllib.parse.urlencode(params)}", token)
        assert status == 200, body
        assert len(body["items"]) <= 997
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [_row_key(r) for r in items] != []
    assert sorted(_row_key(r) for r in items) == expected
    assert len(items) == len(expected)  # no row twice across pages
    assert pages >= len(expected) // 997
    times = [r["window_start_ms"] for r in items]
    assert times == sorted(times)
    _same_as_stored(items, fine)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"scope": "room", "site_id": "s"}, 400),  # a room needs its building and room
        ({"asset_id": "a", "every": "5m"}, 400),  # only the stored intervals
        ({"asset_id": "a", "limit": MAX_PAGE_ROWS + 1}, 422),
        ({"asset_id": "a", "end_ms": (MAX_WINDOWS + 1) * MINUTE_MS}, 400),
        ({"asset_id": "a", "cursor": "not-a-cursor"}, 400),
        ({"asset_id": "x" * 201}, 422),
    ],
)
def test_the_api_refuses_what_its_bounds_refuse(
    api: tuple[str, str], params: dict[str, Any], status: int
) -> None:
    base, token = api
    query = {"start_ms": 0, "end_ms": HOUR_MS, **params}
    got, body = get(f"{base}/api/v1/series?{urllib.parse.urlencode(query)}", token)
    assert got == status, body
    assert "influx" not in json.dumps(body).lower()
    unauthorised, _ = get(f"{base}/api/v1/series?{urllib.parse.urlencode(query)}", None)
    assert unauthorised == 401


DASHBOARD = ROOT / "deploy" / "grafana" / "luxflow.json"


def grafana(query: str, *, start_ms: int, end_ms: int, site: str, asset: str) -> str:
    """`query` with Grafana's macros and the dashboard's variables as Grafana substitutes them
    for the InfluxDB data source (regex variables are regex-escaped)."""
    text = (
        query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
        .replace("$__interval", "1m")
        .replace("$site", re.escape(site))
        .replace("$asset", re.escape(asset))
    )
    assert re.search(r"\$[\w{]", text) is None, text  # every macro and variable replaced
    return text


def test_every_grafana_query_runs_on_influxd_and_returns_rows(
    influx_run: SimulatedRun, fine: dict[Key, dict[str, Any]]
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    client = influx_client(influx_run.deployment)
    start, end = influx_run.range_ms
    asset, _ = min(fine)
    site = fine[min(fine)]["site"]
    macros = {"start_ms": start, "end_ms": end, "site": site, "asset": asset}
    variables = {v["name"]: v["query"] for v in dashboard["templating"]["list"]}
    [sites] = client.query(grafana(variables["site"], **macros))
    assert [site] == [v[1] for v in sites["series"][0]["values"] if v[1] == site]
    [assets] = client.query(grafana(variables["asset"], **macros))
    assert asset in {v[1] for v in assets["series"][0]["values"]}
    targets = [t for p in dashboard["panels"] for t in p["targets"]]
    assert len(targets) >= 8
    for target in targets:
        statement = grafana(target["query"], **macros)
        results = client.query(statement)
        rows = [v for r in results for s in r.get("series", []) for v in s["values"]]
        assert [v for v in rows if any(x is not None for x in v[1:])], statement


def test_setup_again_with_other_durations_alters_the_policies_and_keeps_the_default(
    influxd: Any,
) -> None:
    database = f"rp_{uuid.uuid4().hex[:10]}"
    client = InfluxHTTP(influxd.endpoint, database, influxd.token)
    ensure_influxdb(client, hot_days=7, cold_days=400)
    ensure_influxdb(client, hot_days=2, cold_days=30)

    [result] = client.query(f'SHOW RETENTION POLICIES ON "{database}"')
    policies = {v[0]: (v[1], v[4]) for v in result["series"][0]["values"]}
    assert policies == {
        "autogen": ("0s", True),
        "series_hot": ("48h0m0s", False),
        "series_cold": ("720h0m0s", False),
    }
