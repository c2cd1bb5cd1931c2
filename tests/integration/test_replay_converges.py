"""A replay that starts later than the straight run (`luxflow replay --from TIME`, state
deleted) re-makes the window it starts in from part of its readings. End to end, with the
local runner: the command model (DynamoDB) and the query model (InfluxDB on influxd, or
Timestream on moto read the way the service keeps records) hold exactly what the straight run
left, and no dead letter."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emulators.influxd import Influxd
from tests.support.deployment import Deployment, recent_params
from tests.support.influx import influx_client, influx_deployment, stored_points

pytestmark = [pytest.mark.integration]


def query_model(deployment: Deployment) -> dict[Any, Any]:
    if deployment.env.get("LUXFLOW_QUERY_MODEL") == "influxdb":
        return stored_points(influx_client(deployment))
    return deployment.timestream_view()


@pytest.mark.parametrize("store", ["influxdb", "timestream"])
def test_a_replay_from_a_later_time_leaves_both_models_as_the_straight_run(
    store: str,
    moto_endpoint: str,
    aws: Callable[[str], Any],
    influxd: Influxd,
    tmp_path: Path,
) -> None:
    name = f"r{uuid.uuid4().hex[:10]}"
    if store == "influxdb":
        deployment = influx_deployment(moto_endpoint, aws, name, tmp_path, influxd)
    else:
        deployment = Deployment(moto_endpoint, aws, name, tmp_path)
    deployment.setup(shards=1)
    # No faults or spikes: an episode open at the replay's start gets a second identity,
    # which only a replay with its state (a savepoint) can avoid.
    params = recent_params(sites=1, hours=2, fault_count=0, spike_count=0)
    simulation, _ = deployment.simulation(params)
    records = list(simulation.records())
    cut = len(records) * 3 // 4  # three quarters in: half-way through the second hour
    deployment.send(records[:cut])
    time.sleep(1.5)
    replay_from = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(1.5)
    deployment.send(records[cut:])
    assert deployment.run_worker_until_idle() == len(records)
    straight = deployment.items(), query_model(deployment)
    usage = [i for i in straight[0] if i.get("type") == "usage_report"]
    assert usage and all(i["coverage"] > 0.9 for i in usage if i["window_ms"] == 3_600_000)

    deployment.luxflow("replay", "--from", replay_from, "--yes")
    assert deployment.run_worker_until_idle() == len(records) - cut

    assert deployment.items() == straight[0]
    assert query_model(deployment) == straight[1]
    assert deployment.dead_letters() == []
