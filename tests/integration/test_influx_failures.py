"""Failures of the InfluxDB query model seen end to end: a refused token, a point the server
refuses (dead-lettered in DynamoDB), and the server down for a while with the worker running
(nothing lost)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.records import DeadLetter
from core.retry import Backoff
from domain.events import EnergySpike, Fault, UsageReport
from domain.views import time_points
from emulators.influxd import Influxd
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.wiring import query_model_sink
from sinks.deadletter import DeadLetterSink, read_dead_letters
from sinks.provision import ensure_dead_letter_table
from tests.support.deployment import ROOT, recent_params
from tests.support.influx import influx_client, influx_deployment, stored_points

pytestmark = [pytest.mark.integration, pytest.mark.influx]

OUTAGE_S = float(os.environ.get("LUXFLOW_TEST_INFLUX_OUTAGE_S", "60"))
"""How long influxd is down in the outage test (the issue's 60 s by default)."""


def test_a_refused_token_is_one_clear_line(
    moto_endpoint: str, aws: Callable[[str], Any], influxd: Influxd, tmp_path: Path
) -> None:
    deployment = influx_deployment(
        moto_endpoint, aws, f"q{uuid.uuid4().hex[:10]}", tmp_path, influxd, token="luxflow:wrong"
    )
    result = subprocess.run(
        [sys.executable, "-m", "app", "query", "energy", "--start", "2026-01-01T00:00:00Z",
         "--end", "2026-01-02T00:00:00Z"],
        cwd=ROOT, env=deployment.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"luxflow: InfluxDB at {influxd.endpoint} refused the token")
    assert "LUXFLOW_INFLUXDB_TOKEN" in lines[0]


def test_a_point_influxdb_refuses_becomes_a_dead_letter(
    moto_endpoint: str, aws: Callable[[str], Any], influxd: Influxd, tmp_path: Path
) -> None:
    """Through the worker's own wiring (`query_model_sink`) and dead-letter table."""
    name = f"q{uuid.uuid4().hex[:10]}"
    deployment = influx_deployment(moto_endpoint, aws, name, tmp_path, influxd)
    env = {k: v for k, v in deployment.env.items() if k.startswith("LUXFLOW_")}
    settings = Settings.from_env({**env, "LUXFLOW_REGION": "us-east-1"})
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    clients = Clients(settings)
    ensure_dead_letter_table(clients.dynamodb, settings.dead_letter_table)
    client = influx_client(deployment)
    client.create_database()
    dead_letter = DeadLetterSink(clients.dynamodb, settings.dead_letter_table, Backoff())
    sink = query_model_sink(settings, clients, dead_letter, "shardId-000000000001")
    good = UsageReport("s1", "b1", "r1", "a1", 3_600_000, 7_200_000, 1.25, 3_600_000, 1.0)
    sink.write(good)
    sink.flush()
    # The next hour with kwh as an integer (a type bug upstream): the measurement has kwh as
    # a float, so InfluxDB answers 400 "field type conflict" for that line only.
    bad = UsageReport("s1", "b1", "r1", "a1", 7_200_000, 10_800_000, 3, 3_600_000, 1.0)  # type: ignore[arg-type]
    spike = EnergySpike("s1", "b1", "r1", "a1", 3_600_000, 3_660_000, 90.0, 60.0, 0.4, "rated")
    for item in (spike, bad, Fault("s1", "b1", "r1", "a1", "E1", 3_700_000)):
        sink.write(item)
    sink.flush()
    dead_letter.flush()
    [letter] = read_dead_letters(clients.dynamodb, settings.dead_letter_table)
    assert isinstance(letter, DeadLetter)
    assert (letter.shard_id, letter.origin) == ("shardId-000000000001", "influxdb")
    assert letter.reason.startswith("influxdb_rejected: partial write: field type conflict")
    assert b'"kwh":3' in letter.data
    stored = stored_points(client)
    assert len(stored) == 3  # the good usage point, the spike and the fault
    assert sink.counters.rejected == 1  # type: ignore[attr-defined]
    assert [f["kwh"] for (m, _, _), f in stored.items() if m == "usage"] == [1.25]


def _points_of(items: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """The query-model points the command model's events imply (a cleared fault was also
    written while open)."""
    import msgspec

    from lighting.provision import events_of
    from sinks.influxdb import MEASURE_TAG

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
    points = {}
    for event in events:
        for p in time_points(event):
            tags = tuple(sorted({**p.dimensions, MEASURE_TAG: p.measure_name}.items()))
            points[(p.table, tags, p.time_ms)] = dict(p.measures)
    return points


def test_influxdb_down_for_a_minute_with_the_worker_running_loses_nothing(
    moto_endpoint: str, aws: Callable[[str], Any], tmp_path: Path
) -> None:
    """influxd stops before the data arrives; `luxflow worker` keeps running and reading (its
    query-model flushes fail, so its shards stop before their checkpoints and restart from
    them); influxd comes back after OUTAGE_S; then InfluxDB holds exactly the points of every
    event in the command model, and the command model every injected event."""
    server = Influxd(log_path=tmp_path / "influxd.log")
    server.start()
    worker: subprocess.Popen[str] | None = None
    try:
        deployment = influx_deployment(
            moto_endpoint, aws, f"q{uuid.uuid4().hex[:10]}", tmp_path, server
        )
        deployment.setup(shards=2)
        simulation, truth = deployment.simulation(recent_params(sites=2))
        client = influx_client(deployment)
        server.stop()
        down_at = time.monotonic()
        worker = deployment.start_worker()
        sent = deployment.send(simulation.records())
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert worker.poll() is None, "the worker must keep running through the outage"
        assert stored_points_or_none(client) is None  # still down
        server.start()
        truth_usage = {(u.asset_id, u.window_start_ms) for u in truth.usage}
        deadline = time.monotonic() + 300
        while True:
            items = deployment.items()
            usage = {
                (i["asset_id"], i["window_start_ms"])
                for i in items
                if i.get("type") == "usage_report" and i["level"] == "asset"
                and i["window_ms"] == 3_600_000
            }  # fmt: skip
            expected = _points_of(items)
            stored = stored_points(client)
            if usage == truth_usage and stored == expected:
                break
            assert time.monotonic() < deadline, (
                f"after the outage: {len(usage)}/{len(truth_usage)} usage reports, "
                f"{len(stored)}/{len(expected)} points"
            )
            time.sleep(2)
        output = deployment.stop(worker)
        worker = None
        assert sent == sum(simulation.reading_count(a) for a in simulation.assets)
        # The outage was real: flushes failed, the shards reported failing and backed off.
        assert "failing (" in output
        assert "InfluxDB write" in output
        spikes = {k[2] for k in stored if ("measure", "energy_spike") in k[1]}
        assert spikes == {s.start_ms for s in truth.spikes}
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        server.cleanup()


def stored_points_or_none(client: Any) -> Any:
    from sinks.influxhttp import InfluxError

    try:
        return stored_points(client)
    except InfluxError:
        return None
