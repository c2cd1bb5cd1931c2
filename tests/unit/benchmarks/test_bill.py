"""The whole-stack bill's arithmetic: every line scales as its label says, the totals are the
sums of the lines, and the Lambda pattern's lines equal a computation by hand.

The inputs are a fixed `Measured` (round numbers, not a run), so each expected value can be
worked out on paper; `test_measured_inputs_come_from_the_runtime` checks the real inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import bill_inputs, cost
from benchmarks.bill import luxflow_bill
from benchmarks.bill_lines import Line
from benchmarks.bill_pattern import lambda_invocations, pattern_bill
from benchmarks.bill_report import bill_json
from benchmarks.stack import (
    BEFORE_ISSUE_25,
    DEPLOYED,
    SECONDS_PER_MONTH,
    Measured,
    Stack,
    kb_rounded,
    on_demand_shards,
    records_per_month,
    worker_tasks,
)
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.app import App

M = Measured(
    bytes_per_record=250.0,
    cpu_us_per_record=40.0,
    checkpoint_interval_ms=5_000,
    units_per_1000={
        "dynamodb_current_state": 700.0,
        "dynamodb_events": 0.1,
        "dynamodb_usage": 1.0,
        "dynamodb_dead_letters": 0.0,
        "timestream_writes": 1.0,
    },
    item_bytes={
        "dynamodb_current_state": 250.0,
        "dynamodb_events": 400.0,
        "dynamodb_usage": 350.0,
    },
    snapshot_kb_per_1000=400.0,
    snapshot_saves_per_shard_hour=720.0,
    state_bytes_per_site=10_000.0,
    metrics_per_shard=20,
    metrics_shared=30,
    emf_bytes_per_shard_flush=2_000.0,
    emf_bytes_shared_flush=500.0,
    metrics_flush_interval_ms=60_000,
    registry_bytes_per_asset=240.0,
    registry_refresh_ms=30_000,
    archive_gzip_ratio=10.0,
)

LINEAR = ("per reading", "per asset", "per site", "per GB")


def by_item(lines: list[Line]) -> dict[str, Line]:
    return {f"{line.group}: {line.item}": line for line in lines}


def test_records_per_month_are_the_design_rate() -> None:
    # 100 MB per site-day of 250-byte readings for an average month.
    assert records_per_month(1, M) == pytest.approx(100e6 / 250 * 30.44)


@pytest.mark.parametrize("stack", [DEPLOYED, BEFORE_ISSUE_25])
def test_per_reading_asset_site_and_gb_lines_grow_exactly_with_the_sites(stack: Stack) -> None:
    small, large = by_item(luxflow_bill(100, stack, M)), by_item(luxflow_bill(1_000, stack, M))
    linear = [name for name, line in small.items() if line.scales in LINEAR]
    assert len(linear) >= 12
    for name in linear:
        assert large[name].usd_month == pytest.approx(10 * small[name].usd_month), name


@pytest.mark.parametrize("stack", [DEPLOYED, BEFORE_ISSUE_25])
def test_per_region_lines_do_not_grow_with_sites_and_double_with_a_second_region(
    stack: Stack,
) -> None:
    one = dataclasses.replace(stack, regions=1)
    at_10 = by_item(luxflow_bill(10, stack, M))
    at_1000 = by_item(luxflow_bill(1_000, stack, M))
    single = by_item(luxflow_bill(10, one, M))
    fixed = [name for name, line in at_10.items() if line.scales == "per region"]
    assert len(fixed) >= 3
    for name in fixed:
        assert at_1000[name].usd_month == pytest.approx(at_10[name].usd_month), name
        assert at_10[name].usd_month == pytest.approx(2 * single[name].usd_month), name


def test_per_shard_lines_step_with_the_shard_count() -> None:
    # 10 and 100 sites fit the on-demand stream's first 4 shards; 1,000 sites need 10.
    assert [on_demand_shards(s, M, DEPLOYED) for s in (10, 100, 1_000)] == [4, 4, 10]
    bills = [by_item(luxflow_bill(s, DEPLOYED, M)) for s in (10, 100, 1_000)]
    for name in (
        "DynamoDB: leases, checkpoints, KCL 3 tables",
        "CloudWatch: luxflow metrics (EMF)",
    ):
        assert bills[0][name].scales == "per shard"
        assert bills[1][name].usd_month == pytest.approx(bills[0][name].usd_month)
        assert bills[2][name].usd_month > bills[1][name].usd_month


def test_metrics_line_is_the_counted_metrics_times_the_price() -> None:
    line = by_item(luxflow_bill(1_000, DEPLOYED, M))["CloudWatch: luxflow metrics (EMF)"]
    # (10 shards at home + 4 idle) x 20 per shard + 2 regions x 30 shared, $0.30 each.
    assert line.usd_month == pytest.approx((14 * 20 + 2 * 30) * 0.30)


def test_registry_reads_grow_with_sites_times_shards() -> None:
    bills = [by_item(luxflow_bill(s, DEPLOYED, M)) for s in (100, 1_000)]
    name = "DynamoDB: registry and homes reads"
    loads = SECONDS_PER_MONTH / 30  # every 30 s, per shard processor
    # 20,000 assets x 240 B = 1,172 units of 4 KB, + 1,000 homes x 100 B = 25 units.
    expected = (10 + 4) * loads * (math.ceil(20_000 * 240 / 4096) + math.ceil(100_000 / 4096))
    assert bills[1][name].usd_month == pytest.approx(expected * 0.125e-6)
    assert bills[1][name].usd_month > 10 * bills[0][name].usd_month


def test_worker_tasks_are_at_least_two_and_at_most_the_shards() -> None:
    assert worker_tasks(4, 0.0, DEPLOYED, M) == 2
    # 100,000 records/s at 40 us and 50 % use need 8 vCPU, bounded by 4 shards.
    assert worker_tasks(4, 100_000.0, DEPLOYED, M) == 4
    assert worker_tasks(64, 100_000.0, DEPLOYED, M) == 8


def test_lambda_pattern_lines_equal_a_hand_computation_at_1000_sites() -> None:
    lines = by_item(pattern_bill(1_000, M))
    n = 1_000 * 100e6 / 250 * 30.44  # readings a month
    rps = n / (30.44 * 86_400)  # 4,630 readings/s over 10 on-demand shards
    invocations = rps / 100 * 30.44 * 86_400  # batches of 100 (> one per shard-second)
    gb_seconds = n * 0.005 * 0.125  # 5 ms per reading, 128 MB
    assert lambda_invocations(1_000, M) == pytest.approx(invocations)
    assert lines["Lambda: function"].usd_month == pytest.approx(
        invocations * 0.20e-6 + gb_seconds * 0.0000166667
    )
    assert lines["DynamoDB: one write per reading"].usd_month == pytest.approx(n * 0.625e-6)
    assert lines["IoT Core: rule actions"].usd_month == pytest.approx(2 * n * 0.15e-6)
    assert lines["IoT Core: rules triggered"].usd_month == pytest.approx(n * 0.15e-6)
    assert lines["Query model: LiveAnalytics writes (rule action)"].usd_month == pytest.approx(
        n * 0.50e-6
    )
    # One stream, 730.6 hours, a 250-byte record counted as 1 KB in and once out.
    assert lines["Kinesis: on-demand stream-hours"].usd_month == pytest.approx(30.44 * 24 * 0.04)
    assert lines["Kinesis: data in"].usd_month == pytest.approx(n / 1024**2 * 0.08)
    assert lines["Kinesis: data out"].usd_month == pytest.approx(n / 1024**2 * 0.04)


def test_a_quiet_stream_costs_lambda_an_invocation_per_shard_second() -> None:
    # 10 sites: 46 readings/s over 4 shards, each shard polled once a second.
    assert lambda_invocations(10, M) == pytest.approx(4 * SECONDS_PER_MONTH)


def test_both_bills_pay_the_same_messages_but_luxflow_two_rules_and_one_action() -> None:
    ours, theirs = by_item(luxflow_bill(100, DEPLOYED, M)), by_item(pattern_bill(100, M))
    assert ours["IoT Core: messages"].usd_month == theirs["IoT Core: messages"].usd_month
    assert ours["IoT Core: rules triggered"].usd_month == pytest.approx(
        2 * theirs["IoT Core: rules triggered"].usd_month
    )
    assert ours["IoT Core: rule actions"].usd_month == pytest.approx(
        theirs["IoT Core: rule actions"].usd_month / 2
    )


def test_report_totals_are_the_sums_of_their_lines() -> None:
    report = bill_json(M)
    assert [s["sites"] for s in report["scales"]] == [10, 100, 1_000]
    for scale in report["scales"]:
        ours = sum(line["usd_month"] for line in scale["luxflow_lines"])
        theirs = sum(line["usd_month"] for line in scale["pattern_lines"])
        assert scale["luxflow_usd_month"] == pytest.approx(
            ours, abs=0.01 * len(scale["luxflow_lines"])
        )
        assert scale["pattern_usd_month"] == pytest.approx(
            theirs, abs=0.01 * len(scale["pattern_lines"])
        )
        assert scale["ratio_to_pattern"] == pytest.approx(
            scale["luxflow_usd_month"] / scale["pattern_usd_month"], abs=1e-3
        )
        assert all(line["assumption"] for line in scale["luxflow_lines"] + scale["pattern_lines"])
    assert report["prices"]["region"] == "us-east-1" and report["prices"]["as_of"]


def test_acceptance_ratio_is_dynamodb_and_compute_against_the_lambda_pattern() -> None:
    run = cost.CostRun(
        records=1_000,
        sites=2,
        interval_ms=4_200,
        bytes_per_record=250.0,
        cpu_us_per_record=40.0,
        checkpoint_interval_ms=5_000,
        units_per_1000={"dynamodb_current_state": 50.0, "timestream_writes": 1.0,
                        "kinesis_gb_read": 0.00025},
    )  # fmt: skip
    figures = cost.dollars(run, None)
    n = 100e6 / 250 * 30.44
    dynamodb = 50 / 1000 * n * 0.625e-6
    compute = n * 40e-6 / 3600 / 0.5 * (0.04048 + 2 * 0.004445)
    baseline = n * 0.625e-6 + n / 100 * 0.20e-6 + n * 0.005 * 0.125 * 0.0000166667
    assert figures["usd_per_site_month"] == pytest.approx(dynamodb + compute, abs=1e-4)
    assert figures["baseline_usd_per_site_month"] == pytest.approx(baseline, abs=1e-4)
    assert figures["ratio_to_baseline"] == pytest.approx((dynamodb + compute) / baseline, abs=1e-4)


@given(st.floats(min_value=1, max_value=1e7), st.sampled_from([1024, 5120, 25 * 1024]))
def test_per_record_rounding_never_undercounts_and_wastes_less_than_a_unit(
    size: float, unit: int
) -> None:
    kb = kb_rounded(size, unit)
    assert size / 1024 <= kb < size / 1024 + unit / 1024
    assert (kb * 1024) % unit == 0


def lighting_app() -> App:
    return build_app(empty_registry(), topic="telemetry", grace_ms=600_000)


def test_measured_inputs_come_from_the_runtime() -> None:
    run = cost.run(lighting_app, sites=1, minutes=20)
    m = bill_inputs.measured(run, lighting_app, cpu_us_per_record=None, kcl_processor_mb=None)
    # Every shard publishes its own series ([App, Shard] and [App, Shard, Sink]); the
    # [App] and [App, Sink] series are shared by the whole region.
    assert m.metrics_per_shard >= 12 and m.metrics_shared >= m.metrics_per_shard
    assert m.emf_bytes_per_shard_flush > 500
    assert 100 < m.registry_bytes_per_asset < 1024
    assert m.archive_gzip_ratio > 2
    assert m.snapshot_saves_per_shard_hour > 0 and m.state_bytes_per_site > 0
    assert 0 < m.item_bytes["dynamodb_current_state"] < 1024
    assert m.checkpoint_interval_ms == 60_000  # the default the bench runs at
