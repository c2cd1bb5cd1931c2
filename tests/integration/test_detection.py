"""Detection that operators can trust, through the real CLI and pipeline on emulated AWS:
registry import with bad rows, a threshold change reaching a running worker, a site's demand
spike stored open at its confirmation and closed at its end, "open faults of a building" as
one Query, spikes in progress listed whatever their start (`luxflow query spikes`, the page),
and precision/recall per event kind on a seeded scenario.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from api.page import read_page
from core.clock import DAY_MS, HOUR_MS
from domain.events import EnergySpike
from domain.telemetry import Telemetry, encode_telemetry
from domain.timestamps import format_ts
from domain.views import command_writes
from lighting.read.command import CommandReader
from lighting.read.cursors import Cursors
from lighting.read.model import ReadModel
from lighting.registry import load_registry
from sinks.attrvalues import to_item
from tests.integration.test_pipeline import by_type, wait_for
from tests.support.deployment import ROOT, Deployment, recent_params
from tests.support.serve import get, serving_process

pytestmark = pytest.mark.integration

HEADER = "site_id,building_id,room_id,asset_id,kind,rated_w,nominal_voltage_v\n"


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, unique_name("lx"), tmp_path)
    deployment.setup(shards=1)
    return deployment


def luxflow(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_an_import_reports_each_bad_row_and_keeps_the_good_ones(
    deployment: Deployment, tmp_path: Path
) -> None:
    csv = tmp_path / "assets.csv"
    csv.write_text(
        HEADER
        + "s1,b1,r1,lamp-1,luminaire,60,230\n"
        + "s1,b1,r1,,luminaire,60,230\n"
        + "s1,b1,r1,lamp-3,toaster,60,230\n"
        + "s1,b1,r1,lamp-4,luminaire,-5,230\n"
        + "s1,b1,r2,sensor-1,sensor,0.5,230\n"
    )
    result = luxflow(deployment, "registry", "import", str(csv))
    assert result.returncode == 1
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected")]
    assert [line.split(":")[1] for line in rejected] == ["3", "4", "5"]
    assert "imported 2 assets" in result.stdout

    shown = luxflow(deployment, "registry", "show", "--json")
    assert shown.returncode == 0
    assets = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted(a["asset_id"] for a in assets) == ["lamp-1", "sensor-1"]
    table = luxflow(deployment, "registry", "show").stdout.splitlines()
    assert [row.split()[:2] for row in table] == [
        ["asset_id", "kind"], ["lamp-1", "luminaire"], ["sensor-1", "sensor"]
    ]  # fmt: skip


def reading(asset: str, ts_ms: int, power_w: float) -> bytes:
    return encode_telemetry(
        Telemetry(
            v=1,
            site_id="s1",
            building_id="b1",
            room_id="r1",
            asset_id=asset,
            ts=format_ts(ts_ms),
            power_w=power_w,
            voltage_v=230.0,
            current_a=power_w / 230.0,
            lux=300.0,
            on=True,
            dim_level=80,
        )
    )


def test_a_threshold_change_reaches_a_running_worker(
    deployment: Deployment, tmp_path: Path
) -> None:
    csv = tmp_path / "assets.csv"
    csv.write_text(HEADER + "s1,b1,r1,lamp-1,luminaire,100,230\n")
    assert luxflow(deployment, "registry", "import", str(csv)).returncode == 0
    now_ms = time.time_ns() // 1_000_000
    start_ms = now_ms - now_ms % 60_000 - 30 * 60_000
    worker = deployment.start_worker()
    try:
        # 100 W under a 125 W threshold (rated 100 W x 1.25): no spike.
        deployment.send(("s1", reading("lamp-1", start_ms + i * 60_000, 100.0)) for i in range(5))
        wait_for(lambda: len(by_type(deployment.items(), "asset_state")) == 1)
        csv.write_text(HEADER + "s1,b1,r1,lamp-1,luminaire,50,230\n")
        assert luxflow(deployment, "registry", "import", str(csv)).returncode == 0
        time.sleep(2.5)  # LUXFLOW_REGISTRY_REFRESH_MS is 1000 here
        powers = [100.0, 100.0, 100.0, 40.0]
        deployment.send(
            ("s1", reading("lamp-1", start_ms + (5 + i) * 60_000, p)) for i, p in enumerate(powers)
        )

        # Raised open at its confirmation, then closed by the 40 W reading.
        def closed() -> bool:
            spikes = by_type(deployment.items(), "energy_spike")
            return [s["status"] for s in spikes] == ["closed"]

        wait_for(closed)
    finally:
        deployment.stop(worker)
    (spike,) = by_type(deployment.items(), "energy_spike")
    assert (spike["started_at_ms"], spike["ended_at_ms"]) == (
        start_ms + 5 * 60_000,
        start_ms + 8 * 60_000,
    )
    assert spike["threshold_w"] == 62.5
    assert spike["rule"] == "power_above_threshold"


def site_spike(item: dict[str, Any]) -> dict[str, Any]:
    """A stored site spike, its powers and energies to the milliwatt(-hour): a minute's
    demand is an energy sum times 60."""
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in item.items()}


def test_a_site_demand_spike_is_stored_open_when_confirmed_then_closed_and_read_open(
    deployment: Deployment, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.json"
    lamps = ["lamp-1", "lamp-2", "lamp-3"]
    place = {"site_id": "s1", "building_id": "b1", "room_id": "r1"}
    assets = [{**place, "asset_id": lamp, "kind": "luminaire", "rated_w": 100.0} for lamp in lamps]
    # 250 W for the site; each lamp's own limit is 125 W, no learnt baselines.
    site = {"site_id": "s1", "demand_threshold_w": 250.0}
    site |= {"demand_baseline_factor": None, "baseline_factor": None}
    registry.write_text(json.dumps({"assets": assets, "sites": [site]}))
    assert luxflow(deployment, "registry", "import", str(registry)).returncode == 0
    now_ms = time.time_ns() // 1_000_000
    start_ms = now_ms - now_ms % 60_000 - 60 * 60_000
    episode_ms = start_ms + 10 * 60_000

    def minutes(first: int, last: int, power_w: float) -> list[tuple[str, bytes]]:
        return [
            ("s1", reading(lamp, start_ms + minute * 60_000, power_w))
            for minute in range(first, last + 1)
            for lamp in lamps
        ]

    # The pause between the two sends is not the end of the input: a quiet shard keeps its
    # lag, so the minutes sent after it are not late.
    deployment.env["LUXFLOW_IDLE_CLOSE"] = "lag"
    worker = deployment.start_worker()
    try:
        # Three lamps at 60 W (180 W), then at 100 W (300 W) from minute 10 to 24: a minute's
        # energy is the trapezoid between readings, so minutes 10 to 23 are above. Minute 10
        # is judged once complete (every lamp has a reading past it) and the site known for
        # the warm-up (16 minutes): the episode is raised open, with minute 10's peak and
        # excess, while it goes on.
        deployment.send([*minutes(0, 9, 60.0), *minutes(10, 24, 100.0)])
        wait_for(lambda: len(by_type(deployment.items(), "energy_spike")) == 1)
        (raised,) = by_type(deployment.items(), "energy_spike")
        shown = luxflow(deployment, "query", "spikes", "--site", "s1", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        (row,) = json.loads(shown.stdout)
        assert (row["status"], row["level"], row["asset_id"], row["ended_at_ms"]) == (
            "open", "site", "", None
        )  # fmt: skip
        # Back to 60 W: minute 24 (240 W) ends it, closed once minute 24 is judged.
        deployment.send(minutes(25, 40, 60.0))

        def closed() -> bool:
            return [s["status"] for s in by_type(deployment.items(), "energy_spike")] == ["closed"]

        wait_for(closed)
    finally:
        deployment.stop(worker)
    (ended,) = by_type(deployment.items(), "energy_spike")
    common = {
        "pk": "SPIKE#s1",
        "sk": f"{episode_ms:013d}#SITE#site_demand",
        "type": "energy_spike",
        "site_id": "s1",
        "building_id": "",
        "room_id": "",
        "asset_id": "",
        "level": "site",
        "rule": "site_demand",
        "started_at_ms": episode_ms,
        "threshold_w": 250.0,
        "peak_w": 300.0,
        "event_id": raised["event_id"],
    }
    assert site_spike(raised) == {
        **common,
        "status": "open",
        "revision": 1,
        "ended_at_ms": None,
        "excess_wh": round(50.0 / 60, 3),
        # In the sparse index of the site's spikes in progress, which the closed one left.
        "gsi1pk": "OPENSPIKE#s1",
        "gsi1sk": f"{episode_ms:013d}#SITE#site_demand",
    }
    assert site_spike(ended) == {
        **common,
        "status": "closed",
        "revision": 2,
        "ended_at_ms": episode_ms + 14 * 60_000,
        "excess_wh": round(14 * 50.0 / 60, 3),
    }


def test_open_faults_of_a_building_are_one_query(deployment: Deployment) -> None:
    simulation, truth = deployment.simulation(recent_params(sites=1, hours=1, fault_count=2))
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()
    items = deployment.items()
    open_faults = [f for f in by_type(items, "fault") if f["status"] == "open"]
    assert open_faults  # every asset went offline when the data ended
    building = open_faults[0]["building_id"]
    site = open_faults[0]["site_id"]
    response = deployment.aws("dynamodb").query(
        TableName=deployment.env["LUXFLOW_COMMAND_TABLE"],
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"OPENFAULT#{site}#{building}"}},
    )
    assert sorted(i["sk"]["S"] for i in response["Items"]) == sorted(
        f["sk"] for f in open_faults if f["building_id"] == building
    )
    cleared = [f for f in by_type(items, "fault") if f["status"] == "cleared"]
    assert len(cleared) == len(truth.faults)


def test_spikes_in_progress_are_listed_whatever_their_start(
    deployment: Deployment, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.json"
    assets = [
        {"site_id": site, "building_id": "b1", "room_id": "r1", "asset_id": f"{site}-lamp"}
        | {"kind": "luminaire", "rated_w": 100.0}
        for site in ("s1", "s2")
    ]
    registry.write_text(json.dumps({"assets": assets, "sites": []}))
    assert luxflow(deployment, "registry", "import", str(registry)).returncode == 0
    now_ms = time.time_ns() // 1_000_000
    now_ms -= now_ms % 1_000

    def spike(site: str, asset: str, ago_ms: int, status: str) -> EnergySpike:
        started_ms = now_ms - ago_ms
        ended_ms = None if status == "open" else started_ms + HOUR_MS
        level = "asset" if asset else "site"
        rule = "rated" if asset else "site_demand"
        building, room = ("b1", "r1") if asset else ("", "")
        return EnergySpike(
            site, building, room, asset, started_ms, ended_ms, 300.0, 100.0, 5.0, rule, level,
            status=status,
        )  # fmt: skip

    open_3_days = spike("s1", "s1-lamp", 3 * DAY_MS, "open")  # dropped off before
    open_2_hours = spike("s1", "", 2 * HOUR_MS, "open")
    closed_1_hour = spike("s1", "s1-lamp", HOUR_MS, "closed")
    closed_3_days = spike("s1", "", 3 * DAY_MS + HOUR_MS, "closed")
    ended_2_days = spike("s1", "s1-lamp", 2 * DAY_MS, "open")
    other_site = spike("s2", "s2-lamp", 4 * DAY_MS, "open")
    ended_2_days_closed = spike("s1", "s1-lamp", 2 * DAY_MS, "closed")
    dynamodb = deployment.aws("dynamodb")
    table = deployment.env["LUXFLOW_COMMAND_TABLE"]
    written = (open_3_days, open_2_hours, closed_1_hour, closed_3_days, ended_2_days, other_site)
    # The closed version of an episode replaces its open one, as the sink writes it.
    for event in (*written, ended_2_days_closed):
        (write,) = command_writes(event)
        dynamodb.put_item(TableName=table, Item=to_item(write.item))
    expected = [
        (closed_1_hour.event_id, "closed"),
        (open_2_hours.event_id, "open"),
        (open_3_days.event_id, "open"),
    ]
    shown = luxflow(deployment, "query", "spikes", "--site", "s1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert [(row["event_id"], row["status"]) for row in json.loads(shown.stdout)] == expected
    command = CommandReader(
        dynamodb, table, lambda: load_registry(dynamodb, table), Cursors.ephemeral()
    )
    # The page shows every site of its buildings: the other site's episode too.
    page = read_page(ReadModel(command, None), None, now_ms)
    assert [(s.event_id, s.status) for s in page.spikes] == [
        *expected,
        (other_site.event_id, "open"),
    ]
    # The API lists the episodes in progress, oldest first, one page at a time.
    token = f"api-{uuid.uuid4().hex}"
    with serving_process(deployment, {"LUXFLOW_API_TOKEN": token}) as (base, _):
        status, first = get(f"{base}/api/v1/sites/s1/spikes/open?limit=1", token)
        assert status == 200 and first["next_cursor"], first
        cursor = urllib.parse.quote(first["next_cursor"])
        status, rest = get(f"{base}/api/v1/sites/s1/spikes/open?limit=5&cursor={cursor}", token)
        assert status == 200 and rest["next_cursor"] is None, rest
    listed = [(row["event_id"], row["status"]) for row in first["items"] + rest["items"]]
    assert listed == [(open_3_days.event_id, "open"), (open_2_hours.event_id, "open")]


def evaluate(*args: str) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LUXFLOW_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "evaluate", "--json", "--sites", "8", "--hours", "12", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # stdout is the JSON object alone (diagnostics go to stderr), so `| jq` works.
    scores: dict[str, dict[str, float]] = msgspec.json.decode(result.stdout)
    return scores


def test_every_event_kind_is_detected_with_full_precision_and_recall() -> None:
    scores = evaluate()
    assert set(scores) >= {
        "fault_code",
        "lamp_failure",
        "voltage",
        "flicker",
        "offline",
        "energy_spike:power_above_threshold",
        "energy_spike:power_above_baseline",
        "energy_spike:site_demand",
        "usage_report",
    }
    for kind, score in scores.items():
        assert score["expected"] > 0, kind
        assert (score["precision"], score["recall"]) == (1.0, 1.0), (kind, score)


def test_a_scenario_without_anomalies_raises_no_event() -> None:
    scores = evaluate("--clean")
    events = {k: s for k, s in scores.items() if k != "usage_report"}
    assert all(s["detected"] == 0 for s in events.values()), events
    assert scores["usage_report"]["recall"] == 1.0
