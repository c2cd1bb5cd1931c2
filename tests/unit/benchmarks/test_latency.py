"""The latency benchmark's own logic, without emulators: it polls the key the worker really
writes, faults each asset once and round robin over sites, and its percentiles are the
nearest-rank ones, and a faulted asset's background readings cannot overtake its fault.
(The benchmark itself runs with `luxflow bench --latency`.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.latency import (
    FAULT_CODE,
    Background,
    LatencyPlan,
    Measurement,
    fault_key,
    fault_order,
    fleet_templates,
    percentile,
    send_fault,
)
from benchmarks.latency_result import ColdStart
from benchmarks.latency_run import beside, checkpoint_ms
from domain.events import Fault
from domain.views import command_writes

NOW_MS = 1_780_000_000_000


def test_the_polled_key_is_the_key_the_command_model_writes_for_the_fault() -> None:
    reading = msgspec.structs.replace(fleet_templates(1, NOW_MS)[0], ts_ms=NOW_MS + 17)
    fault = Fault(
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        FAULT_CODE,
        reading.ts_ms,
    )
    (write,) = command_writes(fault)
    key = fault_key(reading)
    assert key == {"pk": {"S": write.item["pk"]}, "sk": {"S": write.item["sk"]}}


def test_faults_go_round_robin_over_sites_each_asset_once() -> None:
    templates = fleet_templates(3, NOW_MS)
    order = fault_order(templates, 7)
    sites = [r.site_id for r in order]
    assert len(set(sites[:3])) == 3  # one fault in every site before a second in any
    assert sites[3:6] == sites[:3] and sites[6] == sites[0]
    assert len({r.asset_id for r in order}) == 7
    with pytest.raises(ValueError, match="61 faults need 61 assets"):
        fault_order(templates, 61)


def test_the_fleet_sends_healthy_readings_of_twenty_assets_a_site() -> None:
    templates = fleet_templates(2, NOW_MS)
    assert len(templates) == 40
    assert all(r.fault_code is None for r in templates)
    assert LatencyPlan(sites=50).background_records_per_s == pytest.approx(1000 / 4.2)


def test_p99_of_120_values_is_the_119th_smallest() -> None:
    values = [float(v) for v in range(1, 121)]
    assert percentile(values, 0.99) == 119.0
    assert percentile(values, 0.5) == 60.0
    assert percentile([], 0.5) is None


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1), st.floats(0.01, 1.0))
def test_a_percentile_is_a_value_with_that_share_at_or_below_it(
    values: list[float], fraction: float
) -> None:
    p = percentile(values, fraction)
    assert p in values
    assert sum(v <= p for v in values) >= fraction * len(values)


def test_checkpoint_duration_is_read_from_the_workers_shard_emf_lines() -> None:
    def line(**fields: object) -> str:
        return json.dumps({"_aws": {}, "App": "a", **fields})

    log = "\n".join(
        [
            "luxflow worker: started",
            line(Shard="shardId-0", CheckpointDurationMs=1000.0),
            "INFO " + line(Shard="shardId-1", CheckpointDurationMs=3000),
            line(CheckpointDurationMs=99_999),  # [App] only: not a shard's
            "{broken",
        ]
    )
    assert checkpoint_ms(log) == 2000.0
    assert checkpoint_ms("nothing") is None


class RecordingKinesis:
    """Keeps what the benchmark's threads put (the benchmark's own logic under test: no AWS
    behaviour is stood in for)."""

    def __init__(self) -> None:
        self.put: list[dict[str, object]] = []

    def put_records(self, *, StreamName: str, Records: list[dict[str, object]]) -> dict[str, int]:  # noqa: N803
        self.put.extend(Records)
        return {"FailedRecordCount": 0}

    def put_record(self, *, StreamName: str, Data: bytes, PartitionKey: str) -> dict[str, str]:  # noqa: N803
        self.put.append({"Data": Data, "PartitionKey": PartitionKey})
        return {}


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the background thread sent nothing for 30 s"
        time.sleep(0.01)


def test_a_faulted_asset_sends_nothing_older_after_its_fault() -> None:
    templates = fleet_templates(1, NOW_MS)
    kinesis = RecordingKinesis()
    m = Measurement(LatencyPlan(sites=1, reading_interval_ms=200))
    background = Background(kinesis, "s", templates, m)
    background.start()
    wait_until(lambda: len(kinesis.put) >= 20)
    send_fault(kinesis, "s", templates[0], m)
    fault_at = len(kinesis.put) - 1
    wait_until(lambda: len(kinesis.put) >= fault_at + 1 + 2 * 19)  # two rounds of the others
    m.stop.set()
    background.join()
    docs = [json.loads(record["Data"]) for record in kinesis.put]  # type: ignore[arg-type]
    asset = templates[0].asset_id
    fault = docs[fault_at]
    assert fault["fault_code"] == FAULT_CODE and fault["asset_id"] == asset
    mine = [d for d in docs if d["asset_id"] == asset]
    assert mine[-1] is fault  # nothing of the asset after its fault
    assert all(d["ts"] < fault["ts"] for d in mine[:-1])  # and nothing before it as new
    assert len({d["asset_id"] for d in docs[fault_at + 1 :]}) == 19  # the others go on


def test_the_cold_start_figure_is_its_own_faults_and_says_when_each_slow_one_was_sent() -> None:
    cold = Measurement(LatencyPlan())
    cold.sent_s = [100.0 + n for n in range(30)]
    cold.latencies_s = [0.2] * 27 + [6.0, 8.5, 3.0]
    cold.faults_sent = 30
    figure = ColdStart.of(cold, fleet_started_s=99.0).as_json()
    assert figure["faults_seen"] == figure["faults_sent"] == 30
    assert figure["p50_s"] == 0.2 and figure["p99_s"] == 8.5 and figure["max_s"] == 8.5
    assert figure["slowest"][:3] == [[29.0, 8.5], [28.0, 6.0], [30.0, 3.0]]


def test_the_cold_faults_share_the_fleets_faulted_assets_and_locks() -> None:
    m = Measurement(LatencyPlan())
    cold = beside(m, LatencyPlan(fault_timeout_s=1.0))
    cold.faulted.add("lamp-1")
    assert "lamp-1" in m.faulted and cold.lock is m.lock and cold.put_lock is m.put_lock
