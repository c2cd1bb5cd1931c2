"""The telemetry series in Timestream LiveAnalytics (moto): `luxflow setup` creates the series
table with its own memory/magnetic split, a worker run writes every rollup of the simulator's
readings to it as one multi-measure record, and the command model (DynamoDB) gets none."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.clock import HOUR_MS, MINUTE_MS
from domain.series import direct_rollups
from tests.support.deployment import Deployment, recent_params
from tests.support.timestream import latest_by_identity, stored_records

pytestmark = pytest.mark.integration


def test_a_worker_run_writes_every_rollup_to_the_series_table_and_none_to_dynamodb(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    deployment = Deployment(moto_endpoint, aws, unique_name("ser"), tmp_path)
    deployment.setup(shards=2)
    database = deployment.env["LUXFLOW_TIMESTREAM_DATABASE"]
    table = aws("timestream-write").describe_table(DatabaseName=database, TableName="series")
    assert table["Table"]["RetentionProperties"] == {
        "MemoryStoreRetentionPeriodInHours": 168,
        "MagneticStoreRetentionPeriodInDays": 400,
    }

    simulation, _ = deployment.simulation(recent_params(sites=1, hours=1, fault_count=0))
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()

    view = latest_by_identity("series", stored_records(moto_endpoint, database, "series"))
    readings = list(simulation.readings())
    for window_ms, measure in ((MINUTE_MS, "telemetry_1m"), (HOUR_MS, "telemetry_1h")):
        expected = direct_rollups(readings, window_ms)
        got = {
            (dict(key[1])["asset"], int(record["Time"])): record
            for key, record in view.items()
            if record["MeasureName"] == measure
        }
        assert sorted(got) == sorted(expected)
        for key, rollup in expected.items():
            record = got[key]
            assert record["TimeUnit"] == "MILLISECONDS"
            assert dict(sorted((d["Name"], d["Value"]) for d in record["Dimensions"])) == {
                "site": rollup.site_id,
                "building": rollup.building_id,
                "room": rollup.room_id,
                "asset": rollup.asset_id,
            }
            measures = {m["Name"]: m for m in record["MeasureValues"]}
            assert measures["readings"] == {
                "Name": "readings",
                "Value": str(rollup.readings),
                "Type": "BIGINT",
            }
            for name, value in rollup.stats.items():
                assert measures[name]["Type"] == "DOUBLE"
                assert math.isclose(float(measures[name]["Value"]), value, rel_tol=1e-9), name
    kinds = {str(item.get("type")) for item in deployment.items()}
    assert "usage_report" in kinds
    assert not [kind for kind in kinds if "series" in kind or "telemetry" in kind]
