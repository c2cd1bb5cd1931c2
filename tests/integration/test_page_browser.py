"""The operator page in a real browser (headless Chromium from Debian) against a worker's real
output: the open faults of every building, the energy chart of every site and the spikes of
the run are rendered. Saves the screenshot the README shows (docs/operator-page.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.chromium import render
from tests.support.deployment import ROOT
from tests.support.influx import SimulatedRun
from tests.support.serve import serving

pytestmark = [pytest.mark.integration, pytest.mark.influx, pytest.mark.browser]


@pytest.fixture(scope="module")
def page(influx_run: SimulatedRun) -> Iterator[tuple[str, bytes]]:
    token = influx_run.deployment.env["LUXFLOW_API_TOKEN"]
    with serving(influx_run.deployment) as base:
        yield render(f"{base}/", {"Authorization": f"Bearer {token}"})


def attrs(dom: str, testid: str) -> list[dict[str, str]]:
    """The data-* attributes of every element with this data-testid."""
    found = []
    for tag in re.findall(rf'<[^>]*data-testid="{testid}"[^>]*>', dom):
        found.append(dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag)))
    return found


def test_page_shows_every_building_with_its_open_faults(
    page: tuple[str, bytes], influx_run: SimulatedRun
) -> None:
    dom, _ = page
    expected = influx_run.open_faults()
    buildings = attrs(dom, "building")
    assert {(b["site"], b["building"]): int(b["open-faults"]) for b in buildings} == {
        key: len(value) for key, value in expected.items()
    }
    faults = attrs(dom, "fault")
    assert sorted((f["asset"], f["code"]) for f in faults) == sorted(
        (asset, code) for value in expected.values() for asset, code, _ in value
    )


def test_page_charts_energy_per_hour_for_every_site(
    page: tuple[str, bytes], influx_run: SimulatedRun
) -> None:
    dom, _ = page
    assert 'data-testid="energy-chart"' in dom
    lines = dict(re.findall(r'<polyline data-site="([^"]+)" data-points="(\d+)"', dom))
    per_site: dict[str, int] = {}
    for site, _ in influx_run.energy("site", 3_600_000):
        per_site[site] = per_site.get(site, 0) + 1
    assert {site: int(n) for site, n in lines.items()} == per_site


def test_page_lists_the_spikes_of_the_run_newest_first_and_saves_a_screenshot(
    page: tuple[str, bytes], influx_run: SimulatedRun
) -> None:
    dom, png = page
    spikes = attrs(dom, "spike")
    assert sorted((s["asset"], int(s["started"])) for s in spikes) == sorted(
        (asset, start) for value in influx_run.spikes().values() for asset, start, _ in value
    )
    starts = [int(s["started"]) for s in spikes]
    assert starts == sorted(starts, reverse=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "operator-page.png").write_bytes(png)
