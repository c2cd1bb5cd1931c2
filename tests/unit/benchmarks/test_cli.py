"""`luxflow bench` on a tiny input: every required key is there with a sane value.

Keeps the command from rotting; asserts nothing about speed. No network: the emulator part is
skipped (--no-e2e) and checked only for its "skipped" shape. The app is the real lighting app.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import cli
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.app import App


def lighting_app() -> App:
    """The real lighting app, with an empty registry (every asset gets the default limits)."""
    return build_app(empty_registry(), topic="telemetry", grace_ms=600_000)


TINY = [
    "--json",
    "--sites",
    "4",
    "--minutes",
    "20",
    "--repeat",
    "1",
    "--memory-assets",
    "40,80",
    "--no-e2e",
    "--no-faust",
    "--no-quix",
    "--no-kcl",
]


def test_bench_json_has_every_required_key_with_sane_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(TINY, build_app=lighting_app) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["input"]["records"] == 4 * 20 * 20  # sites x assets per site x minutes
    assert report["pipeline"]["records"] == report["input"]["records"]
    assert report["pipeline"]["bad_records"] == 0
    # At least every asset's first current state (the deadband keeps drift out after it).
    assert report["pipeline"]["outputs"] >= 4 * 20
    assert report["pipeline"]["requests"]["PutItem"] > 0  # requests were built and sent
    assert report["pipeline_records_per_s_per_core"] > 0
    reduced = report["reduced_work"]
    assert "not the same work" in reduced["note"]  # the reduced figure says what it is
    assert reduced["plain_boto3_records_per_s_per_core"] > 0
    overhead = report["framework_overhead_us"]
    assert set(overhead) == {"luxflow", "faust", "quix", "plain"}
    assert 0 < overhead["plain"] < overhead["luxflow"]  # the engine does more than a for loop
    assert overhead["faust"] is None  # --no-faust
    assert overhead["quix"] is None  # --no-quix
    assert set(report["throughput_by_shards"]) == {"1", "4", "16", "64"}
    assert all(rate > 0 for rate in report["throughput_by_shards"].values())
    assert report["throughput_by_shards"]["1"] == report["pipeline_records_per_s_per_core"]
    assert set(report["bytes_per_live_asset"]) == {"40", "80"}
    assert all(0 < size < 100_000 for size in report["bytes_per_live_asset"].values())
    stages = report["stages_us_per_record"]
    assert 0 < stages["decode"] < stages["full_pipeline"]

    cost = report["cost"]
    units = cost["request_units_per_1000_records"]
    # Current state is written at most once per reading (deadband, coalesced).
    assert 0 < units["dynamodb_current_state"] <= 1000
    assert units["dynamodb_snapshots"] > 0
    assert units["dynamodb_leases"] > 0 and units["kinesis_get_records"] > 0
    assert cost["usd_per_site_month"] > 0 and cost["baseline_usd_per_site_month"] > 0
    assert cost["ratio_to_baseline"] == pytest.approx(
        cost["usd_per_site_month"] / cost["baseline_usd_per_site_month"], rel=1e-2
    )
    assert cost["prices"]["as_of"] and cost["prices"]["region"] == "us-east-1"
    # A longer checkpoint interval never writes more current state (the deadband already
    # keeps drift out, so at the default there may be nothing left to coalesce).
    levers = list(cost["levers"].values())
    assert (
        levers[-1]["request_units_per_1000_records"]["dynamodb_current_state"]
        <= units["dynamodb_current_state"]
    )

    bill = report["bill"]
    assert [scale["sites"] for scale in bill["scales"]] == [10, 100, 1_000]
    assert bill["measured_inputs"]["units_per_1000"]["dynamodb_current_state"] == pytest.approx(
        units["dynamodb_current_state"], abs=0.01
    )

    # Skipped parts say so instead of failing.
    assert report["faust_same_work_ratio"] is None
    assert "skipped" in report["faust_error"]
    assert report["quix_same_work_ratio"] is None
    assert report["quix_error"] == "skipped (--no-quix)"
    assert report["kcl_processor_rss_mb"] is None
    assert "skipped" in report["kcl_processor_error"]
    assert report["e2e_ratio_to_emulator"] is None
    assert "skipped" in report["e2e"]["error"]

    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].count(".") == 2
    assert set(report["goals"]) == {
        "pipeline_at_least_200k_per_core",
        "overhead_at_most_tenth_of_faust",
        "e2e_ratio_at_least_0_8",
        "shards_within_20_percent",
        "at_most_1kb_per_live_asset",
        "kcl_processor_at_most_35_mb",
        "cost_at_most_10_percent_of_baseline",
    }


def test_bench_table_names_every_measure(capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in TINY if a != "--json"]
    assert cli.main(args, build_app=lighting_app) == 0
    table = capsys.readouterr().out
    for name in (
        "in-process pipeline",
        "faust_same_work_ratio",
        "quix_same_work_ratio",
        "framework overhead, quix",
        "framework overhead, luxflow",
        "reduced work: plain",
        "64 shard(s)",
        "kcl-processor resident memory",
        "ratio_to_baseline",
        "ACCEPTANCE  DynamoDB + compute per site-month",
        "whole-stack bill",
        "TOTAL Lambda pattern",
    ):
        assert name in table
    assert table.index("ACCEPTANCE") < table.index("in-process pipeline")  # printed first
    assert "memory per live asset, 80 assets" in table
    assert "faust_error: skipped" in table
    assert "quix_error: skipped (--no-quix)" in table


def test_bench_bill_alone_gives_the_acceptance_figure_and_the_bill(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--bill", "--json", "--minutes", "20"], build_app=lighting_app) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"machine", "quick", "cost", "bill", "elapsed_s"}
    cost = report["cost"]
    assert cost["ratio_to_baseline"] == pytest.approx(
        cost["usd_per_site_month"] / cost["baseline_usd_per_site_month"], rel=1e-2
    )
    for scale in report["bill"]["scales"]:
        assert scale["luxflow_usd_month"] > 0 and scale["pattern_usd_month"] > 0

    assert cli.main(["--bill", "--minutes", "20"], build_app=lighting_app) == 0
    table = capsys.readouterr().out
    assert table.startswith("=" * 100 + "\nACCEPTANCE")
    assert "goal: at most 10 %" in table


def test_faust_runs_the_lighting_agent_or_says_why() -> None:
    from benchmarks.faust_bench import noop_us_per_event, run_same_work
    from benchmarks.workload import fleet, generate

    records = generate(fleet(1, 10 * 60_000, episodes=False)).records
    for result in (
        run_same_work(lighting_app, records, batch=50, checkpoint_every=200),
        noop_us_per_event([r.data for r in records]),
    ):
        if result.error is None:
            assert result.events == len(records)
            assert result.events_per_cpu_s is not None and result.events_per_cpu_s > 0
        else:
            assert result.events_per_cpu_s is None
            assert "faust" in result.error
