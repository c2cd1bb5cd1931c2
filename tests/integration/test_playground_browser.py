"""The playground (`luxflow demo --keep`) with the InfluxDB query model, watched in headless
Chromium as an operator would: log in from `/`, then, without reloading, see per shard lag,
dead letters by reason, a spike in progress, a fault injected through the stream during the
test, and one energy chart per site whose axes fit the data. Saves the README's screenshots
(docs/img/)."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator

import pytest

from core.clock import wall_clock_ms
from domain.telemetry import Reading, encode_reading
from lighting.clients import Clients
from lighting.settings import Settings
from sim.playground import Playground, playground
from streams.kinesis.producer import Producer
from tests.support.browser import Browser, browser
from tests.support.deployment import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.influx, pytest.mark.browser]

FAULT_CODE = "driver_overheat"
SHARDS = 2
SITES = 3


@pytest.fixture(scope="module")
def ground() -> Iterator[Playground]:
    args = argparse.Namespace(
        sites=SITES, buildings=1, rooms=2, lamps=3, hours=2, interval_s=60,
        faults=2, spikes=2, seed=11, shards=SHARDS,
    )  # fmt: skip
    with playground(Settings(), args, query_model="influxdb", malformed_every=100) as ground:
        yield ground


def count(page: Browser, selector: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll('{selector}').length"))


def attrs(page: Browser, selector: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.evaluate(
        f"Array.from(document.querySelectorAll('{selector}'), e => ({{...e.dataset}}))"
    )
    return found


def put_open_spike(ground: Playground, started_at_ms: int) -> str:
    """An open spike item as the worker stores one while the spike lasts (status "open",
    no end yet)."""
    asset = ground.simulation.assets[0]
    event_id = f"test-open-spike-{started_at_ms}"
    ground_clients = Clients(ground.settings)
    ground_clients.dynamodb.put_item(
        TableName=ground.settings.command_table,
        Item={
            "pk": {"S": f"SPIKE#{asset.site_id}"},
            "sk": {"S": f"{started_at_ms:013d}#{asset.asset_id}"},
            "type": {"S": "energy_spike"},
            "event_id": {"S": event_id},
            "site_id": {"S": asset.site_id},
            "building_id": {"S": asset.building_id},
            "room_id": {"S": asset.room_id},
            "asset_id": {"S": asset.asset_id},
            "level": {"S": "asset"},
            "rule": {"S": "rated"},
            "started_at_ms": {"N": str(started_at_ms)},
            "ended_at_ms": {"NULL": True},
            "peak_w": {"N": "180"},
            "threshold_w": {"N": "60"},
            "excess_wh": {"N": "2.5"},
            "status": {"S": "open"},
        },
    )
    return event_id


def send_fault_readings(ground: Playground, stop: threading.Event) -> None:
    """A lamp reporting a device fault code every second until `stop`: the worker opens the
    fault from the first (and the simulation's next healthy reading cannot close it for long)."""
    asset = ground.simulation.assets[-1]
    producer = Producer(Clients(ground.settings).kinesis, ground.settings.stream)
    while not stop.is_set():
        reading = Reading(
            asset.site_id, asset.building_id, asset.room_id, asset.asset_id, wall_clock_ms(),
            12.0, 230.0, 0.05, 300.0, True, 100, FAULT_CODE,
        )  # fmt: skip
        producer.send([(asset.site_id, encode_reading(reading))])
        stop.wait(1.0)


def test_an_operator_logs_in_from_the_root_and_watches_the_playground_live(
    ground: Playground,
) -> None:
    docs = ROOT / "docs" / "img"
    docs.mkdir(parents=True, exist_ok=True)
    with browser() as page:
        page.navigate(ground.url)
        assert page.evaluate("location.pathname") == "/login"
        (docs / "login.png").write_bytes(page.screenshot(height=140))
        page.evaluate(
            f"document.querySelector('input[name=token]').value = '{ground.token}';"
            "document.querySelector('form').submit()"
        )
        page.wait_for(
            "location.pathname === '/' && !!document.getElementById('pipeline')", "the page"
        )
        # Set once: a reload would lose it, so its presence at the end proves none happened.
        page.evaluate("window.luxflowNoReload = true")

        page.wait_for(
            f"document.querySelectorAll('[data-testid=shard][data-lag-ms]:not([data-lag-ms=\"\"])')"
            f".length === {SHARDS}",
            "the lag of every shard",
        )
        page.wait_for("document.querySelectorAll('[data-testid=dead-letters]').length > 0",
                      "dead letters")  # fmt: skip
        reasons = {d["reason"] for d in attrs(page, "[data-testid=dead-letters]")}
        assert reasons <= {"not_json", "bad_type", "missing_field", "bad_value", "clock_skew",
                           "bad_id", "too_deep", "too_large"}  # fmt: skip
        assert reasons

        spike_event = put_open_spike(ground, wall_clock_ms() - 120_000)
        stop = threading.Event()
        sender = threading.Thread(target=send_fault_readings, args=(ground, stop), daemon=True)
        sender.start()
        try:
            page.wait_for(
                f"!!document.querySelector('[data-testid=open-fault][data-code={FAULT_CODE}]')",
                "the injected fault",
            )
            page.wait_for(
                f"!!document.querySelector('[data-testid=open-spike][data-event=\"{spike_event}\"]')",
                "the spike in progress",
            )
            page.wait_for(
                f"document.querySelectorAll('[data-testid=site-energy]').length === {SITES}",
                "an energy chart per site",
            )
            assert page.evaluate("window.luxflowNoReload === true")
            assert int(page.evaluate("document.body.dataset.refreshes")) >= 1
            faulty = ground.simulation.assets[-1].asset_id
            assert {"asset": faulty, "code": FAULT_CODE, "testid": "open-fault"} in attrs(
                page, "[data-testid=open-fault]"
            )
            spikes = attrs(page, "[data-testid=spike]")
            assert {s["status"] for s in spikes if s["started"] and s["asset"]} <= {
                "open", "closed"
            }  # fmt: skip
            charts = attrs(page, "[data-testid=site-energy]")
            assert sorted(c["site"] for c in charts) == sorted(
                {a.site_id for a in ground.simulation.assets}
            )
            for chart in charts:
                most, top = float(chart["maxKwh"]), float(chart["topKwh"])
                # The axis fits the data: the busiest hour reaches at least 40 % of it.
                assert 0 < most <= top <= 2.5 * most
            # Every chart spans the same hours: those that have data.
            assert len({(c["xStart"], c["xEnd"]) for c in charts}) == 1
            (docs / "operator-page.png").write_bytes(page.screenshot())
        finally:
            stop.set()
            sender.join(timeout=10)
