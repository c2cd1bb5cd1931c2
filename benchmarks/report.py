"""The goals of `luxflow bench` and the plain-text table of a report (`benchmarks.cli`)."""

from __future__ import annotations

from typing import Any

from benchmarks.bill_report import acceptance_lines, render_bill

GOAL_PIPELINE = 200_000.0
GOAL_OVERHEAD_FRACTION_OF_FAUST = 0.1
GOAL_E2E_RATIO = 0.8
GOAL_SHARD_SPREAD = 0.2
GOAL_BYTES_PER_ASSET = 1024.0
GOAL_KCL_RSS_MB = 35.0
GOAL_COST_RATIO = 0.1


def goals(report: dict[str, Any]) -> dict[str, bool | None]:
    def at_least(value: Any, goal: float) -> bool | None:
        return None if value is None else bool(value >= goal)

    def at_most(value: Any, goal: float) -> bool | None:
        return None if value is None else bool(value <= goal)

    overhead = report.get("framework_overhead_us") or {}
    lux, faust = overhead.get("luxflow"), overhead.get("faust")
    per_asset = report.get("bytes_per_live_asset") or {}
    cost = report.get("cost") or {}
    return {
        "pipeline_at_least_200k_per_core": at_least(
            report.get("pipeline_records_per_s_per_core"), GOAL_PIPELINE
        ),
        "overhead_at_most_tenth_of_faust": (
            None
            if lux is None or not faust
            else bool(lux <= faust * GOAL_OVERHEAD_FRACTION_OF_FAUST)
        ),
        "e2e_ratio_at_least_0_8": at_least(report.get("e2e_ratio_to_emulator"), GOAL_E2E_RATIO),
        "shards_within_20_percent": at_most(
            report.get("throughput_by_shards_spread"), GOAL_SHARD_SPREAD
        ),
        "at_most_1kb_per_live_asset": (
            None if not per_asset else all(v <= GOAL_BYTES_PER_ASSET for v in per_asset.values())
        ),
        "kcl_processor_at_most_35_mb": at_most(report.get("kcl_processor_rss_mb"), GOAL_KCL_RSS_MB),
        "cost_at_most_10_percent_of_baseline": at_most(
            cost.get("ratio_to_baseline"), GOAL_COST_RATIO
        ),
    }


def _num(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text}{unit}"


def _mark(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


Row = tuple[str, str, str, str]


def _info(name: str, value: str) -> Row:
    """A row without a goal."""
    return (name, value, "", "")


def _rows(report: dict[str, Any]) -> list[Row]:
    g = report["goals"]
    stages = report["stages_us_per_record"]
    overhead = report["framework_overhead_us"]
    e2e_part = report["e2e"]
    reduced = report["reduced_work"]
    rows: list[Row] = [
        (
            "in-process pipeline (records/s/core)",
            _num(report["pipeline_records_per_s_per_core"]),
            ">= 200,000",
            _mark(g["pipeline_at_least_200k_per_core"]),
        ),
        ("  us per record", _num(report["pipeline_us_per_record"], 2), "<= 5", ""),
        _info("  decode (us/record)", _num(stages["decode"], 2)),
        _info("  engine without sinks (us/record)", _num(stages["engine_without_sinks"], 2)),
        _info("  sink requests built (us/record)", _num(stages["sinks_request_building"], 2)),
        _info(
            "faust, same work (records/s/core)",
            _num(report["faust_same_work_records_per_s_per_core"]),
        ),
        _info(
            "  faust_same_work_ratio (luxflow/faust)", _num(report["faust_same_work_ratio"], 2, "x")
        ),
        _info(
            "quix, same work (records/s/core)",
            _num(report.get("quix_same_work_records_per_s_per_core")),
        ),
        _info(
            "  quix_same_work_ratio (luxflow/quix)",
            _num(report.get("quix_same_work_ratio"), 2, "x"),
        ),
        (
            "framework overhead, luxflow (us/record)",
            _num(overhead["luxflow"], 3),
            "<= faust/10",
            _mark(g["overhead_at_most_tenth_of_faust"]),
        ),
        _info("framework overhead, faust (us/record)", _num(overhead["faust"], 3)),
        _info("framework overhead, quix (us/record)", _num(overhead.get("quix"), 3)),
        _info("framework overhead, plain loop (us/record)", _num(overhead["plain"], 3)),
        _info(
            "reduced work: plain json+boto3 (records/s)",
            _num(reduced["plain_boto3_records_per_s_per_core"]),
        ),
        _info("luxflow end to end (records/s)", _num(e2e_part.get("luxflow_records_per_s"))),
        (
            "  e2e_ratio_to_emulator",
            _num(report["e2e_ratio_to_emulator"], 2),
            ">= 0.8",
            _mark(g["e2e_ratio_at_least_0_8"]),
        ),
    ]
    for shards, rate in report["throughput_by_shards"].items():
        rows.append(_info(f"{shards} shard(s) (records/s/core)", _num(rate)))
    spread = report["throughput_by_shards_spread"]
    rows.append(
        (
            "  spread (max/min - 1)",
            _num(spread and spread * 100, 1, "%"),
            "<= 20%",
            _mark(g["shards_within_20_percent"]),
        )
    )
    for assets, size in report["bytes_per_live_asset"].items():
        snap = report["snapshot_bytes_per_live_asset"][assets]
        rows.append(
            (
                f"memory per live asset, {int(assets):,} assets",
                _num(size, 0, " B"),
                "<= 1,024 B",
                _mark(size <= GOAL_BYTES_PER_ASSET),
            )
        )
        rows.append(_info(f"  snapshot bytes per asset, {int(assets):,}", _num(snap, 0, " B")))
    rows.append(
        (
            "kcl-processor resident memory (MB)",
            _num(report["kcl_processor_rss_mb"], 1),
            "<= 35",
            _mark(g["kcl_processor_at_most_35_mb"]),
        )
    )
    rows.append(_info("  kcl-processor start (s)", _num(report["kcl_processor_start_s"], 2)))
    cost = report["cost"]
    if cost.get("usd_per_site_month") is not None:
        rows.append(
            (
                "$ per site-month, luxflow (DynamoDB+compute)",
                _num(cost["usd_per_site_month"], 3),
                "",
                "",
            )
        )
        rows.append(
            (
                "$ per site-month, IoT->Kinesis->Lambda->DynamoDB",
                _num(cost["baseline_usd_per_site_month"], 3),
                "",
                "",
            )
        )
        rows.append(
            (
                "  ratio_to_baseline",
                _num(cost["ratio_to_baseline"], 3),
                "<= 0.10",
                _mark(g["cost_at_most_10_percent_of_baseline"]),
            )
        )
        for name, lever in cost.get("levers", {}).items():
            rows.append(
                (
                    f"  lever: {name}",
                    _num(lever["ratio_to_baseline"], 3),
                    "<= 0.10",
                    _mark(lever["ratio_to_baseline"] <= GOAL_COST_RATIO),
                )
            )
    return rows


def render(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    m, i = report["machine"], report["input"]
    rows = _rows(report)
    header = ("measure", "value", "goal", "met")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    lines = [
        *acceptance_lines(report["cost"]),
        f"luxflow bench{' --quick' if report['quick'] else ''}: {m['cores']} cores, "
        f"{m['cpu_model']}, Python {m['python']}; CPU time, best of {i['repeat']} passes",
        f"input: {i['records']:,} records ({i['bytes_per_record']} B avg) from {i['sites']} sites, "
        f"{i['assets']:,} assets, {i['simulated_minutes']} simulated minutes; "
        f"batches of {i['batch']}, checkpoint every {i['checkpoint_every']:,} records",
        "",
    ]
    fmt = f"{{:<{widths[0]}}}  {{:>{widths[1]}}}  {{:>{widths[2]}}}  {{:>{widths[3]}}}"
    lines.append(fmt.format(*header))
    lines.append(fmt.format(*("-" * w for w in widths)))
    lines.extend(fmt.format(*row) for row in rows)
    notes = [f"reduced work: {report['reduced_work']['note']}"]
    for key in ("faust_error", "quix_error", "kcl_processor_error"):
        if report.get(key):
            notes.append(f"{key}: {report[key]}")
    if report["e2e"].get("error"):
        notes.append(f"e2e: {report['e2e']['error']}")
    if report["cost"].get("error"):
        notes.append(f"cost: {report['cost']['error']}")
    else:
        units = report["cost"]["request_units_per_1000_records"]
        notes.append(
            "request units per 1,000 records: "
            + ", ".join(f"{k} {v:,.3f}" for k, v in units.items())
        )
        p = report["cost"]["prices"]
        notes.append(f"prices: {p['region']} list prices as of {p['as_of']} (benchmarks.prices)")
    pipeline = report["pipeline"]
    notes.append(
        "sink requests per record: "
        + ", ".join(
            f"{k} {v / max(1, pipeline['records']):.3f}"
            for k, v in sorted(pipeline["requests"].items())
        )
    )
    notes.append(f"elapsed {report['elapsed_s']} s")
    lines.append("")
    lines.extend(notes)
    bill = report.get("bill") or {}
    if "scales" in bill:
        lines += ["", render_bill(bill).rstrip("\n")]
    return "\n".join(lines) + "\n"


def render_bill_only(report: dict[str, Any]) -> str:
    """`luxflow bench --bill`: the acceptance figure, its levers, then the whole bill."""
    cost = report["cost"]
    lines = acceptance_lines(cost)
    for name, lever in cost.get("levers", {}).items():
        lines.append(
            f"  lever {name}: ${lever['usd_per_site_month']:.3f} per site-month = "
            f"{lever['ratio_to_baseline'] * 100:.1f} % of the pattern"
        )
    units = cost.get("request_units_per_1000_records", {})
    if units:
        lines.append(
            "  request units per 1,000 records: "
            + ", ".join(f"{k} {v:,.2f}" for k, v in units.items())
        )
    bill = report.get("bill") or {}
    if "scales" in bill:
        lines += ["", render_bill(bill).rstrip("\n")]
    elif bill.get("error"):
        lines.append(f"bill: {bill['error']}")
    lines.append(f"elapsed {report['elapsed_s']} s")
    return "\n".join(lines) + "\n"
