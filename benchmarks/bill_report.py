"""The whole-stack bill and the latency figures of `luxflow bench`, as JSON and as text.

The bill's JSON: for each scale (10, 100, 1,000 sites) every line of luxflow's deployment and
of the Lambda pattern with $/month, $/site-month, how it scales and its assumption; totals by
group; and the alternatives (the `main` deployment, a provisioned stream, one region).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from benchmarks import prices
from benchmarks.bill import luxflow_bill
from benchmarks.bill_lines import Line, provisioned_kinesis
from benchmarks.bill_pattern import PATTERN, pattern_bill
from benchmarks.stack import BEFORE_ISSUE_25, DEPLOYED, Measured, Stack, on_demand_shards

SCALES = (10, 100, 1_000)
GOAL_COST_RATIO = 0.1


def _lines_json(lines: Sequence[Line], sites: int) -> list[dict[str, Any]]:
    return [
        {
            "group": line.group,
            "item": line.item,
            "usd_month": round(line.usd_month, 2),
            "usd_per_site_month": round(line.usd_month / sites, 4),
            "scales": line.scales,
            "assumption": line.assumption,
        }
        for line in lines
    ]


def _groups(lines: Sequence[Line]) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in lines:
        out[line.group] = out.get(line.group, 0.0) + line.usd_month
    return {k: round(v, 2) for k, v in out.items()}


def _total(lines: Sequence[Line]) -> float:
    return sum(line.usd_month for line in lines)


def scale_json(sites: int, stack: Stack, m: Measured) -> dict[str, Any]:
    ours, theirs = luxflow_bill(sites, stack, m), pattern_bill(sites, m)
    one_region = dataclasses.replace(stack, regions=1)
    on_demand = sum(line.usd_month for line in ours if line.group == "Kinesis")
    return {
        "sites": sites,
        "shards_home_region": on_demand_shards(sites, m, stack),
        "luxflow_usd_month": round(_total(ours), 2),
        "luxflow_usd_per_site_month": round(_total(ours) / sites, 3),
        "pattern_usd_month": round(_total(theirs), 2),
        "pattern_usd_per_site_month": round(_total(theirs) / sites, 3),
        "ratio_to_pattern": round(_total(ours) / _total(theirs), 3),
        "luxflow_by_group": _groups(ours),
        "pattern_by_group": _groups(theirs),
        "alternatives_usd_per_site_month": {
            "before_issue_25": round(_total(luxflow_bill(sites, BEFORE_ISSUE_25, m)) / sites, 3),
            "one_region": round(_total(luxflow_bill(sites, one_region, m)) / sites, 3),
            "provisioned_stream": round(
                (_total(ours) - on_demand + provisioned_kinesis(sites, stack, m)) / sites, 3
            ),
        },
        "luxflow_lines": _lines_json(ours, sites),
        "pattern_lines": _lines_json(theirs, sites),
    }


def bill_json(m: Measured, stack: Stack = DEPLOYED) -> dict[str, Any]:
    return {
        "deployment": stack.name,
        "pattern": PATTERN.name,
        "measured_inputs": dataclasses.asdict(m),
        "scales": [scale_json(sites, stack, m) for sites in SCALES],
        "prices": {
            "region": prices.REGION,
            "as_of": prices.AS_OF,
            "checked_online": prices.CHECKED_ONLINE,
            "uncertain": sorted(prices.UNCERTAIN),
            "metering_checked": prices.METERING_CHECKED,
        },
    }


# -- text -----------------------------------------------------------------------------------


def acceptance_lines(cost: dict[str, Any]) -> list[str]:
    """The acceptance figure, first and plain: DynamoDB + compute per site-month."""
    if cost.get("usd_per_site_month") is None:
        return [f"ACCEPTANCE (DynamoDB + compute vs the Lambda pattern): {cost.get('error')}"]
    ratio = cost["ratio_to_baseline"]
    met = "met" if ratio <= GOAL_COST_RATIO else "MISSED"
    interval = cost["run"]["checkpoint_interval_ms"]
    return [
        "=" * 100,
        f"ACCEPTANCE  DynamoDB + compute per site-month, default settings (checkpoint "
        f"{interval / 1000:g} s): ${cost['usd_per_site_month']:.3f} = {ratio * 100:.1f} % of "
        f"the Lambda pattern's ${cost['baseline_usd_per_site_month']:.3f}",
        f"            goal: at most {GOAL_COST_RATIO * 100:.0f} %  ->  {met}",
        "=" * 100,
    ]


def render_bill(bill: dict[str, Any]) -> str:
    scales = bill["scales"]
    head = ["$ per month (per site-month)"] + [f"{s['sites']:,} sites" for s in scales]
    rows: list[list[str]] = []

    def money(value: float, sites: int) -> str:
        return f"{value:,.0f} ({value / sites:,.2f})"

    for key, label in (("luxflow_lines", "luxflow"), ("pattern_lines", "Lambda pattern")):
        rows.append([f"-- {label}"] + [""] * len(scales))
        for i, line in enumerate(scales[0][key]):
            name = f"{line['group']}: {line['item']}"
            rows.append([name] + [money(s[key][i]["usd_month"], s["sites"]) for s in scales])
        total = "luxflow_usd_month" if key == "luxflow_lines" else "pattern_usd_month"
        rows.append([f"TOTAL {label}"] + [money(s[total], s["sites"]) for s in scales])
    rows.append(["luxflow / pattern"] + [f"{s['ratio_to_pattern']:.2f}" for s in scales])
    for alt in scales[0]["alternatives_usd_per_site_month"]:
        rows.append(
            [f"  alt. {alt.replace('_', ' ')} (per site)"]
            + [f"{s['alternatives_usd_per_site_month'][alt]:,.2f}" for s in scales]
        )
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    fmt = "  ".join([f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]])
    out = [
        f"whole-stack bill, us-east-1 list prices as of {bill['prices']['as_of']} (not checked "
        f"online): {bill['deployment']}; vs {bill['pattern']}",
        fmt.format(*head),
        fmt.format(*("-" * w for w in widths)),
    ]
    out += [fmt.format(*row) for row in rows]
    out.append("assumptions (each line, at 1,000 sites):")
    for key in ("luxflow_lines", "pattern_lines"):
        for line in scales[-1][key]:
            out.append(
                f"  {line['group']}: {line['item']} [{line['scales']}]: {line['assumption']}"
            )
    out.append(f"uncertain prices: {', '.join(bill['prices']['uncertain'])}")
    return "\n".join(out) + "\n"


def render_latency(latency: dict[str, Any]) -> str:
    plan = latency["plan"]
    out = [
        f"PutRecord -> fault item in the command model: {plan['faults']} faults, one every "
        f"{plan['fault_every_ms']} ms, while {plan['sites']} sites ({plan['assets']:,} assets) "
        f"send ~{plan['background_records_per_s_planned']:.0f} records/s over "
        f"{plan['shards']} shards; worker at its default settings"
        + (f" but LUXFLOW_STATE_REFRESH_MS={plan['refresh_ms']}" if plan.get("refresh_ms") else ""),
        f"{'runner':<8} {'seen':>9} {'p50 s':>7} {'p90 s':>7} {'p99 s':>7} {'max s':>7} "
        f"{'goal p99':>9} {'bg rec/s':>9} {'ckpt ms':>8} {'poll ms':>8} {'warm-up s':>10}",
    ]

    def f(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for name, r in latency["runners"].items():
        goal = ""
        if name == "local" and r["p99_s"] is not None:
            goal = "<=1 met" if r["p99_s"] <= 1.0 else "<=1 NO"
        out.append(
            f"{name:<8} {r['faults_seen']:>4}/{r['faults_sent']:<4} {f(r['p50_s']):>7} "
            f"{f(r['p90_s']):>7} {f(r['p99_s']):>7} {f(r['max_s']):>7} {goal:>9} "
            f"{f(r['background_records_per_s'], 0):>9} {f(r['checkpoint_ms_mean'], 0):>8} "
            f"{f(r['poll_round_ms'], 0):>8} {f(r['warmup_s'], 0):>10}"
        )
        cold = r.get("cold_start")
        if cold:
            out.append(
                f"  {name} cold start (the fleet's first round): {cold['faults_seen']}/"
                f"{cold['faults_sent']} faults, p50 {f(cold['p50_s'])} s, p99 "
                f"{f(cold['p99_s'])} s, max {f(cold['max_s'])} s; p99 of all "
                f"{f(r.get('all_p99_s'))} s"
            )
        if r["error"]:
            out.append(f"  {name}: {r['error'][:600]}")
    return "\n".join(out) + "\n"
