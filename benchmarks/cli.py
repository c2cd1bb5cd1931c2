"""`luxflow bench`: luxflow's throughput and memory, and the alternatives, in one run.

    luxflow bench [--quick] [--json] [--profile N] [--no-faust] [--no-e2e]

Every figure of a run comes from the same simulated input (`benchmarks.workload`), made once:

- pipeline: decode -> agents -> windowed tables -> detection -> sink requests built, through
  one `ShardEngine` with the real app (`build_app()`) and the real DynamoDB and Timestream
  sinks over in-memory clients (`benchmarks.harness`); records per CPU second (one core);
- faust / plain boto3: the same per-record work in a faust-streaming agent and in a plain
  json + boto3 loop (`benchmarks.faust_bench`, `benchmarks.plain`); ratios luxflow / them;
- end to end through moto's Kinesis on 127.0.0.1 (`benchmarks.e2e`): luxflow's consumption
  rate / the emulator's raw GetRecords read rate;
- throughput with the records spread over 1, 4, 16 and 64 engines (one per shard);
- memory per live asset for 1k, 10k and 100k assets (`benchmarks.memory`).

The entry point takes the app factory from the composition root (nothing imports app.py):
`main(argv, build_app=...)`, or `add_arguments(parser)` + `run(args, build_app=...)` when the
`luxflow` CLI owns the parser. A benchmark prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from benchmarks import e2e, faust_bench, harness, memory, plain, workload
from core.clock import MINUTE_MS
from domain.telemetry import decode_reading
from streams.app import App

AppFactory = Callable[[], App]

SHARD_COUNTS = (1, 4, 16, 64)

GOAL_PIPELINE = 200_000.0
GOAL_FAUST_RATIO = 10.0
GOAL_E2E_RATIO = 0.8
GOAL_SHARD_SPREAD = 0.2
GOAL_BYTES_PER_ASSET = 1024.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile one pipeline pass (cProfile) and print its top N functions to stderr",
    )
    parser.add_argument("--no-faust", action="store_true", help="skip the faust comparison")
    parser.add_argument("--no-e2e", action="store_true", help="skip the emulator measurement")
    parser.add_argument("--sites", type=int, help="sites of 20 assets (default 128, quick 64)")
    parser.add_argument("--minutes", type=int, help="simulated minutes (default 120, quick 75)")
    parser.add_argument(
        "--e2e-records", type=int, help="records put into the emulator (default 40000, quick 10000)"
    )
    parser.add_argument(
        "--memory-assets",
        help="comma-separated live-asset counts (default 1000,10000,100000)",
    )
    parser.add_argument("--repeat", type=int, help="passes per shard count, best kept (default 2)")
    parser.add_argument("--batch", type=int, default=500, help="records per process() call")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=5_000,
        help="records between checkpoints of every engine (5,000 = 5 s of a full shard)",
    )


def main(argv: Sequence[str], *, build_app: AppFactory) -> int:
    parser = argparse.ArgumentParser(prog="luxflow bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(list(argv)), build_app=build_app)


def run(args: argparse.Namespace, *, build_app: AppFactory, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    progress = _progress(args.json)
    report = measure(args, build_app=build_app, progress=progress)
    if args.json:
        out.write(json.dumps(report, indent=None, sort_keys=False) + "\n")
    else:
        out.write(render(report))
    return 0


# -- measuring ------------------------------------------------------------------------------


def _progress(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    return say


def _per_s(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_model": model or None,
        "platform": platform.platform(),
    }


def measure(
    args: argparse.Namespace,
    *,
    build_app: AppFactory,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    quick = bool(args.quick)
    sites = args.sites or (64 if quick else 128)
    minutes = args.minutes or (75 if quick else 120)
    repeat = args.repeat or 2
    e2e_records = args.e2e_records or (10_000 if quick else 40_000)
    memory_assets = (
        [int(n) for n in args.memory_assets.split(",")]
        if args.memory_assets
        else [1_000, 10_000, 100_000]
    )
    batch, checkpoint_every = args.batch, args.checkpoint_every
    started = time.perf_counter()

    progress(f"generating {sites} sites x {minutes} min of telemetry")
    load = workload.generate(workload.fleet(sites, minutes * MINUTE_MS))
    records = load.records
    payloads = [r.data for r in records]
    report: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "input": {
            "records": len(records),
            "sites": len(load.sites),
            "assets": load.assets,
            "simulated_minutes": minutes,
            "bytes_per_record": round(load.payload_bytes / max(1, len(records)), 1),
            "batch": batch,
            "checkpoint_every": checkpoint_every,
        },
    }

    # luxflow in-process pipeline over 1, 4, 16 and 64 engines; passes of the shard counts
    # alternate (`repeat` rounds) and the best of each is kept, so load on the machine hits
    # them alike. The 1-engine figure is the pipeline figure.
    plans = {
        shards: harness.plan(
            records,
            workload.site_sharding(load, shards),
            shards,
            batch=batch,
            checkpoint_every=checkpoint_every,
        )
        for shards in SHARD_COUNTS
    }
    best_of: dict[int, harness.RunResult] = {}
    for round_ in range(repeat):
        for shards, shard_plan in plans.items():
            progress(
                f"luxflow pipeline, {len(records)} records, {shards} shard(s), pass {round_ + 1}"
            )
            result = harness.run_pipeline(build_app, shards, shard_plan)
            if shards not in best_of or result.cpu_s < best_of[shards].cpu_s:
                best_of[shards] = result
    one_shard = plans[1]
    best = best_of[1]
    pipeline = _per_s(best.records, best.cpu_s)
    report["pipeline_records_per_s_per_core"] = pipeline
    report["pipeline_us_per_record"] = best.cpu_s / best.records * 1e6 if best.records else None
    report["pipeline"] = {
        "records": best.records,
        "outputs": best.outputs,
        "late_records": best.late_records,
        "bad_records": best.bad_records,
        "checkpoints": best.checkpoints,
        "requests": dict(best.requests.by_call),
        "items_per_record": best.requests.items / max(1, best.records),
        "request_bytes_per_record": best.requests.request_bytes / max(1, best.records),
    }
    by_shards = {str(n): _per_s(r.records, r.cpu_s) for n, r in sorted(best_of.items())}
    report["throughput_by_shards"] = by_shards
    rates = [r for r in by_shards.values() if r]
    report["throughput_by_shards_spread"] = (max(rates) / min(rates) - 1) if rates else None
    report["stages_us_per_record"] = _stages(build_app, payloads, records, one_shard, best)

    if args.profile:
        progress("profiling one pipeline pass")
        _profile(build_app, one_shard, args.profile)

    # Plain json + boto3 loop and faust agent on the same payloads.
    progress("plain json + boto3 loop")
    plain_records, plain_cpu = plain.run_plain(payloads, flush_every=checkpoint_every)
    plain_rate = _per_s(plain_records, plain_cpu)
    report["plain_boto3_records_per_s_per_core"] = plain_rate
    report["plain_boto3_ratio"] = _ratio(pipeline, plain_rate)

    if args.no_faust:
        report["faust_records_per_s_per_core"] = None
        report["faust_ratio"] = None
        report["faust_error"] = "skipped (--no-faust)"
        report["faust_version"] = None
    else:
        progress("faust-streaming agent (test_context, no Kafka)")
        faust = faust_bench.run_faust(payloads, flush_every=checkpoint_every)
        report["faust_records_per_s_per_core"] = faust.events_per_cpu_s
        report["faust_ratio"] = _ratio(pipeline, faust.events_per_cpu_s)
        report["faust_error"] = faust.error
        report["faust_version"] = faust.version

    # End to end through emulated Kinesis.
    if args.no_e2e:
        report["e2e_ratio_to_emulator"] = None
        report["e2e"] = {"error": "skipped (--no-e2e)"}
    else:
        count = min(e2e_records, len(records))
        progress(f"end to end through moto's Kinesis on 127.0.0.1, {count} records")
        result_e2e = e2e.run_e2e(build_app, records[:count])
        report["e2e_ratio_to_emulator"] = result_e2e.ratio
        report["e2e"] = {
            "records": result_e2e.records,
            "raw_get_records_per_s": result_e2e.raw_records_per_s,
            "luxflow_records_per_s": result_e2e.luxflow_records_per_s,
            "error": result_e2e.error,
        }

    # Memory per live asset.
    per_asset: dict[str, float] = {}
    snapshot_per_asset: dict[str, float] = {}
    for assets in memory_assets:
        progress(f"memory with {assets} live assets")
        mem = memory.measure_live_assets(build_app, assets)
        per_asset[str(assets)] = round(mem.bytes_per_asset, 1)
        snapshot_per_asset[str(assets)] = round(mem.snapshot_bytes_per_asset, 1)
    report["bytes_per_live_asset"] = per_asset
    report["snapshot_bytes_per_live_asset"] = snapshot_per_asset

    report["goals"] = _goals(report)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _stages(
    build_app: AppFactory,
    payloads: Sequence[bytes],
    records: Sequence[Any],
    one_shard: harness.Plan,
    full: harness.RunResult,
) -> dict[str, float | None]:
    """Where a record's time goes: decode alone, the engine without sinks, the whole path."""
    cpu0 = time.process_time()
    for record in records:
        decode_reading(record.data, record.arrival_ms)
    decode_s = time.process_time() - cpu0
    bare = harness.run_pipeline(build_app, 1, one_shard, with_sinks=False)
    n = max(1, len(payloads))
    return {
        "decode": decode_s / n * 1e6,
        "engine_without_sinks": bare.cpu_s / n * 1e6,
        "sinks_request_building": (full.cpu_s - bare.cpu_s) / n * 1e6,
        "full_pipeline": full.cpu_s / n * 1e6,
    }


def _profile(build_app: AppFactory, one_shard: harness.Plan, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    harness.run_pipeline(build_app, 1, one_shard)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print(text.getvalue(), file=sys.stderr)


def _goals(report: dict[str, Any]) -> dict[str, bool | None]:
    def at_least(value: Any, goal: float) -> bool | None:
        return None if value is None else bool(value >= goal)

    spread = report.get("throughput_by_shards_spread")
    per_asset = report.get("bytes_per_live_asset") or {}
    return {
        "pipeline_at_least_200k_per_core": at_least(
            report.get("pipeline_records_per_s_per_core"), GOAL_PIPELINE
        ),
        "faust_ratio_at_least_10": at_least(report.get("faust_ratio"), GOAL_FAUST_RATIO),
        "e2e_ratio_at_least_0_8": at_least(report.get("e2e_ratio_to_emulator"), GOAL_E2E_RATIO),
        "shards_within_20_percent": None if spread is None else bool(spread <= GOAL_SHARD_SPREAD),
        "at_most_1kb_per_live_asset": (
            None if not per_asset else all(v <= GOAL_BYTES_PER_ASSET for v in per_asset.values())
        ),
    }


# -- printing -------------------------------------------------------------------------------


def _num(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text}{unit}"


def _mark(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def render(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    m, i, goals = report["machine"], report["input"], report["goals"]
    stages = report["stages_us_per_record"]
    e2e_part = report["e2e"]
    rows: list[tuple[str, str, str, str]] = [
        (
            "in-process pipeline (records/s/core)",
            _num(report["pipeline_records_per_s_per_core"]),
            ">= 200,000",
            _mark(goals["pipeline_at_least_200k_per_core"]),
        ),
        ("  us per record", _num(report["pipeline_us_per_record"], 2), "<= 5", ""),
        ("  decode (us/record)", _num(stages["decode"], 2), "", ""),
        ("  engine without sinks (us/record)", _num(stages["engine_without_sinks"], 2), "", ""),
        ("  sink requests built (us/record)", _num(stages["sinks_request_building"], 2), "", ""),
        (
            "faust-streaming agent (records/s/core)",
            _num(report["faust_records_per_s_per_core"]),
            "",
            "",
        ),
        (
            "  faust_ratio (luxflow / faust)",
            _num(report["faust_ratio"], 2, "x"),
            ">= 10x",
            _mark(goals["faust_ratio_at_least_10"]),
        ),
        (
            "plain json + boto3 loop (records/s/core)",
            _num(report["plain_boto3_records_per_s_per_core"]),
            "",
            "",
        ),
        (
            "  plain_boto3_ratio (luxflow / plain)",
            _num(report["plain_boto3_ratio"], 2, "x"),
            "",
            "",
        ),
        (
            "emulator raw GetRecords (records/s)",
            _num(e2e_part.get("raw_get_records_per_s")),
            "",
            "",
        ),
        ("luxflow end to end (records/s)", _num(e2e_part.get("luxflow_records_per_s")), "", ""),
        (
            "  e2e_ratio_to_emulator",
            _num(report["e2e_ratio_to_emulator"], 2),
            ">= 0.8",
            _mark(goals["e2e_ratio_at_least_0_8"]),
        ),
    ]
    for shards, rate in report["throughput_by_shards"].items():
        rows.append((f"{shards} shard(s) (records/s/core)", _num(rate), "", ""))
    rows.append(
        (
            "  spread (max/min - 1)",
            _num(
                report["throughput_by_shards_spread"]
                and report["throughput_by_shards_spread"] * 100,
                1,
                "%",
            ),
            "<= 20%",
            _mark(goals["shards_within_20_percent"]),
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
        rows.append((f"  snapshot bytes per asset, {int(assets):,}", _num(snap, 0, " B"), "", ""))
    header = ("measure", "value", "goal", "met")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    lines = [
        f"luxflow bench{' --quick' if report['quick'] else ''}: {m['cores']} cores, "
        f"{m['cpu_model']}, Python {m['python']}",
        f"input: {i['records']:,} records ({i['bytes_per_record']} B avg) from {i['sites']} sites, "
        f"{i['assets']:,} assets, {i['simulated_minutes']} simulated minutes; "
        f"batches of {i['batch']}, checkpoint every {i['checkpoint_every']:,} records",
        "",
    ]
    fmt = f"{{:<{widths[0]}}}  {{:>{widths[1]}}}  {{:>{widths[2]}}}  {{:>{widths[3]}}}"
    lines.append(fmt.format(*header))
    lines.append(fmt.format(*("-" * w for w in widths)))
    lines.extend(fmt.format(*row) for row in rows)
    notes = []
    if report.get("faust_error"):
        notes.append(f"faust: {report['faust_error']}")
    if e2e_part.get("error"):
        notes.append(f"e2e: {e2e_part['error']}")
    pipeline = report["pipeline"]
    notes.append(
        "sink requests per record: "
        + ", ".join(
            f"{k} {v / max(1, pipeline['records']):.3f}"
            for k, v in sorted(pipeline["requests"].items())
        )
        + f"; {pipeline['request_bytes_per_record']:.0f} request bytes per record"
    )
    notes.append(f"elapsed {report['elapsed_s']} s")
    lines.append("")
    lines.extend(notes)
    return "\n".join(lines) + "\n"


def register(sub: Any) -> None:
    """`luxflow bench`, added to the CLI by the composition root when benchmarks/ is present."""
    from lighting.agents import build_app
    from lighting.registry import empty_registry

    bench = sub.add_parser(
        "bench", help="throughput and memory benchmarks, compared with faust and plain boto3"
    )
    add_arguments(bench)

    def cmd_bench(args: argparse.Namespace, settings: Any) -> int:
        return run(
            args,
            build_app=lambda: build_app(
                empty_registry(), topic=settings.stream, grace_ms=settings.window_grace_ms
            ),
        )

    bench.set_defaults(run=cmd_bench)
