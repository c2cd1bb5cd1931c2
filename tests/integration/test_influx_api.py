"""The read API (`luxflow serve`) after a simulated run: the same results as the ground truth,
paginated, behind a bearer token, read-only, described by an OpenAPI document."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from core.clock import HOUR_MS
from domain.deadband import DEFAULT_DEADBAND, next_written
from domain.rules import WrittenState, asset_state
from tests.support.influx import SimulatedRun, close
from tests.support.serve import get, serving

pytestmark = [pytest.mark.integration, pytest.mark.influx]


@pytest.fixture(scope="module")
def api(influx_run: SimulatedRun) -> Iterator[tuple[str, str]]:
    with serving(influx_run.deployment) as base:
        yield base, influx_run.deployment.env["LUXFLOW_API_TOKEN"]


def all_pages(base: str, token: str, path: str, **params: Any) -> tuple[list[Any], int]:
    """Every item of a paginated route, following `next_cursor`; and the number of pages."""
    items: list[Any] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        status, body = get(f"{base}{path}?{urllib.parse.urlencode(query)}", token)
        assert status == 200, body
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_open_faults_page_by_page_equal_the_ground_truth(
    api: tuple[str, str], influx_run: SimulatedRun
) -> None:
    base, token = api
    for (site, building), expected in influx_run.open_faults().items():
        items, pages = all_pages(
            base, token, f"/api/v1/sites/{site}/buildings/{building}/faults", limit=3
        )
        assert {(f["asset_id"], f["code"], f["opened_at_ms"]) for f in items} == expected
        assert len(items) == len(expected)  # no row twice across pages
        assert pages == -(-len(expected) // 3) or pages == -(-len(expected) // 3) + 1


def test_spikes_equal_the_ground_truth(api: tuple[str, str], influx_run: SimulatedRun) -> None:
    base, token = api
    for site, expected in influx_run.spikes().items():
        items, _ = all_pages(
            base,
            token,
            f"/api/v1/sites/{site}/spikes",
            since_ms=influx_run.params.start_ms,
            limit=1,
        )
        assert {(s["asset_id"], s["started_at_ms"], s["ended_at_ms"]) for s in items} == expected


def test_energy_per_site_and_hour_equals_the_ground_truth(
    api: tuple[str, str], influx_run: SimulatedRun
) -> None:
    base, token = api
    start, end = influx_run.range_ms
    items, pages = all_pages(
        base, token, "/api/v1/energy", scope="site", every="1h", start_ms=start, end_ms=end, limit=2
    )
    got = {(e["site_id"], str(e["window_start_ms"])): e["kwh"] for e in items}
    expected = influx_run.energy("site", HOUR_MS)
    assert got.keys() == expected.keys()
    assert close(got, expected) == {}
    assert pages >= len(expected) // 2


def test_asset_state_and_fleet(api: tuple[str, str], influx_run: SimulatedRun) -> None:
    base, token = api
    # The stored current state is the last one the default deadband chose to write.
    written: dict[str, WrittenState] = {}
    for reading in influx_run.simulation.readings():
        state = asset_state(reading)
        chosen = next_written(written.get(reading.asset_id), state, DEFAULT_DEADBAND)
        if chosen is not None:
            written[reading.asset_id] = chosen
    last = {asset: state.ts_ms for asset, state in written.items()}
    asset_id = sorted(last)[0]
    status, body = get(f"{base}/api/v1/assets/{asset_id}", token)
    assert (status, body["ts_ms"]) == (200, last[asset_id])
    assert get(f"{base}/api/v1/assets/nothing-here", token)[0] == 404
    fleet, pages = all_pages(base, token, "/api/v1/fleet", limit=1)
    assert pages == len(fleet)  # one site per page
    assert {s["site_id"]: s["assets"] for s in fleet} == {
        site: sum(1 for a in influx_run.simulation.assets if a.site_id == site)
        for site in {a.site_id for a in influx_run.simulation.assets}
    }


def test_a_token_is_required_and_the_api_is_read_only(api: tuple[str, str]) -> None:
    base, token = api
    assert get(f"{base}/api/v1/fleet", None)[0] == 401
    assert get(f"{base}/api/v1/fleet", "wrong-token")[0] == 401
    assert get(f"{base}/", None)[0] == 401
    assert get(f"{base}/api/v1/fleet", token, method="POST")[0] == 405
    assert get(f"{base}/api/v1/fleet", token, method="DELETE")[0] == 405


def test_bad_parameters_are_400_or_422(api: tuple[str, str]) -> None:
    base, token = api
    assert get(f"{base}/api/v1/sites/s/spikes?cursor=not-a-cursor", token)[0] == 400
    status, _ = get(f"{base}/api/v1/energy?start_ms=10&end_ms=5", token)
    assert status == 400
    assert get(f"{base}/api/v1/energy?start_ms=0&end_ms=5&every=1w", token)[0] == 422


def test_openapi_document_describes_every_route_and_the_bearer_scheme(
    api: tuple[str, str],
) -> None:
    base, _ = api
    status, document = get(f"{base}/openapi.json", None)
    assert status == 200
    assert set(document["paths"]) == {
        "/api/v1/assets/{asset_id}",
        "/api/v1/sites/{site_id}/buildings/{building_id}/faults",
        "/api/v1/sites/{site_id}/spikes",
        "/api/v1/sites/{site_id}/spikes/open",
        "/api/v1/fleet",
        "/api/v1/buildings",
        "/api/v1/energy",
        "/api/v1/series",
    }
    assert all(set(methods) == {"get"} for methods in document["paths"].values())
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
