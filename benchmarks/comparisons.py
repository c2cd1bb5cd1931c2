"""The parts of `luxflow bench` beside luxflow's own pipeline: faust and Quix Streams on the
same work, the framework overheads, the reduced-work plain loop, the kcl-processor footprint
and the cost."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from benchmarks import (
    bill_inputs,
    bill_report,
    cost,
    faust_bench,
    kcl_footprint,
    overhead,
    plain,
    quix_bench,
)
from benchmarks.same_work import RunResult
from core.records import Record
from streams.app import App

LEVER_CHECKPOINT_INTERVALS_MS = (60_000, 120_000)
NOOP_RECORDS = 20_000  # enough for a stable per-record figure of the no-op pipelines


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _best(results: Iterable[RunResult]) -> RunResult:
    """The fastest pass, as luxflow's own figure is the best of its passes; the first failed
    one if none has a figure."""
    ran = list(results)
    return max(ran, key=lambda r: r.events_per_cpu_s or 0.0)


def alternatives(
    report: dict[str, Any],
    build_app: Callable[[], App],
    records: Sequence[Record],
    *,
    args: argparse.Namespace,
    batch: int,
    checkpoint_every: int,
    progress: Callable[[str], None],
) -> None:
    payloads = [r.data for r in records]
    pipeline = report["pipeline_records_per_s_per_core"]
    progress("framework overhead: no-op agents (luxflow, plain loop)")
    lux_us = overhead.luxflow_us(records, batch=batch, checkpoint_every=checkpoint_every)
    overheads: dict[str, float | None] = {
        "luxflow": lux_us,
        "faust": None,
        "quix": None,
        "plain": overhead.plain_us(payloads),
    }
    report["framework_overhead_us"] = overheads
    progress("reduced work: plain json + boto3 loop")
    plain_records, plain_cpu = plain.run_plain(payloads, flush_every=checkpoint_every)
    plain_rate = plain_records / plain_cpu if plain_cpu > 0 else None
    report["reduced_work"] = {
        "note": "the plain loop runs only the rule step and hourly usage (no daily or "
        "site-minute windows, no roll-ups, no spikes): not the same work as luxflow",
        "plain_boto3_records_per_s_per_core": plain_rate,
        "luxflow_over_plain": _ratio(pipeline, plain_rate),
    }
    noop_payloads = payloads[:NOOP_RECORDS]
    frameworks = (
        Framework(
            "faust",
            skipped=args.no_faust,
            noop_label="faust-streaming, no-op agent (test_context, no Kafka)",
            noop=lambda: overhead.faust_us(noop_payloads),
            label="faust-streaming running the lighting agent (same work)",
            run=faust_bench.run_same_work,
        ),
        Framework(
            "quix",
            skipped=args.no_quix,
            noop_label="Quix Streams, no-op pipeline (Application, no Kafka)",
            noop=lambda: overhead.quix_us(records[:NOOP_RECORDS]),
            label="Quix Streams running the lighting agent (same work)",
            run=quix_bench.run_same_work,
        ),
    )
    for framework in frameworks:
        _same_work(
            report,
            framework,
            build_app,
            records,
            batch=batch,
            checkpoint_every=checkpoint_every,
            progress=progress,
        )


class Framework(NamedTuple):
    """Another framework run on luxflow's work: its no-op pipeline for the framework overhead,
    then the lighting app's same work (`benchmarks.same_work`)."""

    name: str  # the report's key prefix; `--no-<name>` skips it
    skipped: bool
    noop_label: str
    noop: Callable[[], tuple[float | None, str | None]]
    label: str
    run: Callable[..., Any]


def _same_work(
    report: dict[str, Any],
    framework: Framework,
    build_app: Callable[[], App],
    records: Sequence[Record],
    *,
    batch: int,
    checkpoint_every: int,
    progress: Callable[[str], None],
) -> None:
    name = framework.name
    report[f"{name}_same_work_records_per_s_per_core"] = None
    report[f"{name}_same_work_ratio"] = None
    report[f"{name}_version"] = None
    if framework.skipped:
        report[f"{name}_error"] = f"skipped (--no-{name})"
        return
    progress(framework.noop_label)
    report["framework_overhead_us"][name], error = framework.noop()
    progress(framework.label)
    same = _best(
        framework.run(build_app, records, batch=batch, checkpoint_every=checkpoint_every)
        for _ in range(report["input"]["repeat"])
    )
    pipeline = report["pipeline_records_per_s_per_core"]
    report[f"{name}_same_work_records_per_s_per_core"] = same.events_per_cpu_s
    report[f"{name}_same_work_ratio"] = _ratio(pipeline, same.events_per_cpu_s)
    report[f"{name}_version"] = same.version
    report[f"{name}_error"] = same.error or error


def footprint_and_cost(
    report: dict[str, Any],
    build_app: Callable[[], App],
    *,
    args: argparse.Namespace,
    progress: Callable[[str], None],
) -> None:
    report["kcl_processor_rss_mb"] = report["kcl_processor_start_s"] = None
    report["kcl_processor_peak_rss_mb"] = None
    report["kcl_processor_error"] = "skipped (--no-kcl)"
    if not args.no_kcl:
        progress("kcl-processor footprint (moto on 127.0.0.1)")
        footprint = kcl_footprint.measure(repeat=2 if args.quick else 3)
        report["kcl_processor_rss_mb"] = footprint.rss_mb
        report["kcl_processor_peak_rss_mb"] = footprint.peak_rss_mb
        report["kcl_processor_start_s"] = footprint.start_s
        report["kcl_processor_error"] = footprint.error
    cost_and_bill(report, build_app, args=args, progress=progress)


def cost_and_bill(
    report: dict[str, Any],
    build_app: Callable[[], App],
    *,
    args: argparse.Namespace,
    progress: Callable[[str], None],
) -> None:
    """The acceptance figure (DynamoDB + compute per site-month next to the Lambda pattern, at
    the default checkpoint and two longer ones) and the whole-stack bill built on it."""
    if args.no_cost:
        report["cost"] = {"error": "skipped (--no-cost)"}
        report["bill"] = {"error": "skipped (--no-cost)"}
        return
    sites, minutes = (2, 135) if args.quick else (4, 135)
    if args.minutes and args.minutes < 60:  # a tiny run (tests): one site, its minutes
        sites, minutes = 1, args.minutes
    us = report.get("pipeline_us_per_record")
    progress(f"cost run: {sites} sites at 100 MB/day for {minutes} min, checkpoint every 5 s")
    base = cost.run(build_app, sites=sites, minutes=minutes)
    report["cost"] = cost.dollars(base, us)
    levers: dict[str, Any] = {}
    for interval_ms in LEVER_CHECKPOINT_INTERVALS_MS:
        progress(f"cost run, checkpoint (flush, coalesce, snapshot) every {interval_ms} ms")
        run = cost.run(build_app, sites=sites, minutes=minutes, checkpoint_interval_ms=interval_ms)
        figures = cost.dollars(run, us)
        levers[f"LUXFLOW_CHECKPOINT_INTERVAL_MS={interval_ms}"] = {
            k: figures[k]
            for k in (
                "usd_per_site_month",
                "ratio_to_baseline",
                "request_units_per_1000_records",
            )
        }
    report["cost"]["levers"] = levers
    progress("whole-stack bill: metric volume, registry items, archive compression")
    inputs = bill_inputs.measured(
        base, build_app, cpu_us_per_record=us, kcl_processor_mb=report.get("kcl_processor_rss_mb")
    )
    report["bill"] = bill_report.bill_json(inputs)
