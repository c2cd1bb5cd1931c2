"""Development commands: `demo`, `evaluate` and `simulate`. They need the simulator and the
emulators, so they live here, outside the runtime packages; the composition root adds them
when this package is installed (never in the runtime image)."""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.base import SubParsers, info, plural
from core.clock import HOUR_MS, wall_clock_ms
from core.errors import ConfigError
from lighting.clients import Clients
from lighting.settings import Settings
from sim.emulated import evaluate_run, run_on_emulated_aws, simulation_of, write_registry
from sim.evaluation import ALL_USAGE_SCOPES
from sim.malformed import MALFORMED_SAMPLES, with_malformed
from sim.params import ANOMALY_COUNTS, scenario_params
from sim.playground import playground, write_env_file
from sim.realistic import RealisticParams
from sim.realistic_eval import evaluate_realistic, realistic_goals_met
from sim.simulation import Simulation
from sim.truth import encode_ground_truth
from streams.kinesis.producer import Producer


def _simulation_args(parser: argparse.ArgumentParser, sites: int, hours: float) -> None:
    parser.add_argument("--sites", type=int, default=sites, help="number of sites")
    parser.add_argument("--buildings", type=int, default=2, help="buildings per site")
    parser.add_argument("--rooms", type=int, default=3, help="rooms per building")
    parser.add_argument("--lamps", type=int, default=4, help="luminaires per room")
    parser.add_argument("--hours", type=float, default=hours, help="simulated hours")
    parser.add_argument("--interval-s", type=int, default=60, help="seconds between readings")
    parser.add_argument("--faults", type=int, default=6, help="faults injected in total")
    parser.add_argument("--spikes", type=int, default=6, help="spikes injected in total")
    parser.add_argument("--seed", type=int, default=7, help="random seed")


def register(sub: SubParsers) -> None:
    demo = sub.add_parser("demo", help="run everything on embedded emulated AWS (127.0.0.1)")
    _simulation_args(demo, sites=4, hours=2)
    demo.add_argument("--shards", type=int, default=4, help="Kinesis shards")
    demo.add_argument(
        "--query-model",
        choices=["timestream", "influxdb"],
        default="timestream",
        help="query-model store: moto's Timestream, or a real influxd (./dev influxd builds it)",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="the playground: keep emulated AWS, a worker, the read API and a live fleet "
        "running until Ctrl-C (--hours of history, then readings at real time)",
    )
    demo.add_argument("--port", type=int, default=8080, help="--keep: the read API's port")
    demo.add_argument(
        "--env-file",
        default=".luxflow/playground.env",
        help="--keep: where to write the `export` lines the other commands need",
    )
    demo.set_defaults(run=cmd_demo)

    simulate = sub.add_parser("simulate", help="send simulated telemetry to the stream")
    _simulation_args(simulate, sites=4, hours=2)
    simulate.add_argument("--out", default="simulation", help="ground truth + registry folder")
    simulate.add_argument(
        "--rate", type=float, default=0, help="records/s (0: as fast as possible)"
    )
    simulate.add_argument("--malformed", action="store_true", help="add malformed samples")
    simulate.set_defaults(run=cmd_simulate)

    evaluate = sub.add_parser(
        "evaluate", help="precision and recall per event kind on a seeded scenario"
    )
    evaluate.add_argument("--sites", type=int, default=20, help="number of sites")
    evaluate.add_argument("--hours", type=float, default=24, help="simulated hours")
    evaluate.add_argument("--seed", type=int, default=1, help="random seed")
    evaluate.add_argument("--shards", type=int, default=4, help="Kinesis shards")
    evaluate.add_argument(
        "--clean", action="store_true", help="inject no anomalies (near-misses stay)"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print only one JSON object keyed by kind on stdout"
    )
    evaluate.add_argument(
        "--realistic",
        action="store_true",
        help="the realistic fleet (irregular sampling, duplicates, out-of-order delivery, "
        "occupancy switching, blips, energy counters) through the real app in-process, "
        "continuous run without idle close (--sites, --hours >= 24, --seed apply; "
        "fewer than 120 lamps get proportionally fewer episodes)",
    )
    evaluate.add_argument(
        "--lamps", type=int, default=30, help="--realistic: lamps per site (default 30)"
    )
    evaluate.set_defaults(run=cmd_evaluate)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    simulation = simulation_of(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ground-truth.json").write_bytes(encode_ground_truth(simulation.ground_truth()))
    write_registry(simulation, out / "registry.json")
    clients = Clients(settings)
    producer = Producer(clients.kinesis, settings.stream, records_per_s=args.rate or None)
    records: Iterable[tuple[str, bytes]] = simulation.records()
    if args.malformed:
        records = with_malformed(records, every=1_000)
    started = time.monotonic()
    producer.send(records)
    elapsed = time.monotonic() - started
    print(
        f"sent {producer.counters.records} records in {elapsed:.1f}s "
        f"({producer.counters.retried_records} retried); ground truth and registry in {out}/"
    )
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_playground(args: argparse.Namespace, settings: Settings) -> int:
    """`demo --keep`: start the playground, say how to use it, run until Ctrl-C."""
    started = time.monotonic()
    info("starting the playground: moto, kinesalite, a worker, the read API, a live fleet")
    with playground(settings, args, port=args.port, query_model=args.query_model) as ground:
        env_file = Path(args.env_file)
        write_env_file(env_file, ground.env)
        fleet = ground.simulation
        print(
            f"\nluxflow playground up in {time.monotonic() - started:.0f} s: "
            f"{plural(args.sites, 'site')}, {plural(len(fleet.assets), 'asset')}, "
            f"{args.hours:g} h of history sent at once, then one reading per asset every "
            f"{args.interval_s} s (a fault, a spike or a malformed record now and then)\n"
            f"\n  operator page  {ground.url}\n  API token      {ground.token}\n"
            f"\nIn another terminal:\n"
            f"  source {env_file}\n"
            "  .venv/bin/luxflow status                  # per shard lag and checkpoint age\n"
            "  .venv/bin/luxflow query fleet             # sites, assets, open faults\n"
            f"  .venv/bin/luxflow query faults --site {fleet.assets[0].site_id} "
            f"--building {fleet.assets[0].building_id}\n"
            "  .venv/bin/luxflow deadletters             # what could not be processed\n"
            '  curl -H "Authorization: Bearer $LUXFLOW_API_TOKEN" '
            f"{ground.url}api/v1/fleet\n"
            "\nCtrl-C stops everything.",
            flush=True,
        )
        # `kill PID` stops the playground as cleanly as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(30)
                runner = ground.runner[0] if ground.runner else None
                read = sum(p.records for p in runner.progress.values()) if runner else 0
                info(f"  live: {ground.feed.sent} readings sent, {read} read by the worker")
        except KeyboardInterrupt:
            info("stopping the playground")
    return 0


def offline_note(items: list[dict[str, Any]]) -> str:
    """The offline faults once the simulated data ended, counted as the summary counts assets:
    each asset once (a fault item per asset), and the site-wide faults (level "site", no asset)
    that the flood rule raises when most of a site goes quiet, apart."""
    offline = [i for i in items if i.get("type") == "fault" and i["code"] == "offline"]
    assets = {i["asset_id"] for i in offline if i.get("level", "asset") != "site"}
    sites = {i["site_id"] for i in offline if i.get("level") == "site"}
    note = f"(and {plural(len(assets), 'asset')} reported offline once the simulated data ended"
    if sites:
        note += f"; {plural(len(sites), 'site')} raised a site-wide offline fault"
    return note + ")"


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Emulated AWS on 127.0.0.1 -> simulator -> worker -> verdict against the ground truth."""
    if args.keep:
        return cmd_playground(args, settings)
    started = time.monotonic()
    simulation = simulation_of(args)
    truth = simulation.ground_truth()
    print(
        f"simulating {plural(args.sites, 'site')}, {plural(len(simulation.assets), 'asset')}, "
        f"{args.hours:g} h: "
        f"{plural(sum(simulation.reading_count(a) for a in simulation.assets), 'reading')}, "
        f"{plural(len(truth.faults), 'fault')}, {plural(len(truth.spikes), 'spike')}, "
        f"{plural(len(MALFORMED_SAMPLES), 'malformed record')}",
        flush=True,
    )
    run = run_on_emulated_aws(
        settings,
        simulation,
        shards=args.shards,
        malformed=True,
        progress=True,
        query_model=args.query_model,
    )
    if run.producer_errors:
        print(f"producer failed: {run.producer_errors[0]}")
        return 1
    result = evaluate_run(truth, run, settings)
    print()
    print(f"{'':36}{'injected':>10}{'stored':>10}{'matched':>10}")
    for score in result.scores:
        if score.expected or score.detected:
            print(f"{score.kind:36}{score.expected:>10}{score.detected:>10}{score.matched:>10}")
    bad_ok = len(run.dead_letters) == len(MALFORMED_SAMPLES)
    print(f"{'dead letters':36}{len(MALFORMED_SAMPLES):>10}{len(run.dead_letters):>10}")
    print(offline_note(run.items))
    if run.query_results:
        print("read side (luxflow query on DynamoDB and InfluxQL):")
        print("\n".join(run.query_results))
    else:
        counted = run.timestream_points
        print(f"Timestream points written: {'not counted' if counted is None else counted}")
    elapsed = time.monotonic() - started
    print(f"runner errors: {len(run.runner_errors)}; took {elapsed:.0f}s")
    ok = result.passed and bad_ok and not run.runner_errors
    print("PASS: stored equals injected" if ok else "FAIL: stored differs from injected")
    return 0 if ok else 1


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """A seeded scenario with every anomaly kind and near-miss through the real pipeline on
    emulated AWS: precision, recall and timing error per event kind."""
    if args.realistic:
        return _evaluate_realistic(args)
    now_ms = wall_clock_ms()
    duration_ms = int(args.hours * HOUR_MS)
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    overrides: dict[str, int | float] = {
        "sites": args.sites,
        "duration_ms": duration_ms,
        "start_ms": end_ms - duration_ms,
        "seed": args.seed,
    }
    # The scenario's counts are for 20 sites over 24 h: scale them to the fleet and period.
    scale = args.sites / 20 * args.hours / 24
    defaults = scenario_params()
    for name in ANOMALY_COUNTS:
        overrides[name] = 0 if args.clean else max(1, round(getattr(defaults, name) * scale))
    # Near-misses (blips, single toggles, short gaps, voltage near the band) stay in a clean
    # scenario: they are what must not fire.
    overrides["near_miss_count"] = max(1, round(defaults.near_miss_count * scale))
    try:
        simulation = Simulation(scenario_params(**overrides))
    except ValueError as exc:
        raise ConfigError(f"cannot plan the scenario: {exc}") from exc
    truth = simulation.ground_truth()
    run = run_on_emulated_aws(
        settings, simulation, shards=args.shards, malformed=False, progress=not args.json
    )
    result = evaluate_run(truth, run, settings, ALL_USAGE_SCOPES)
    if args.json:
        print(result.to_json())
    else:
        print(f"{'kind':36}{'expected':>9}{'detected':>9}{'precision':>10}{'recall':>8}")
        for score in result.scores:
            print(
                f"{score.kind:36}{score.expected:>9}{score.detected:>9}"
                f"{score.precision:>10.3f}{score.recall:>8.3f}"
            )
    return 0 if not run.runner_errors and not run.producer_errors else 1


def _evaluate_realistic(args: argparse.Namespace) -> int:
    """`evaluate --realistic`: the scores as JSON (stdout), 1 when a goal is missed."""
    sites = args.sites if args.sites != 20 else 4  # 20 is the seeded scenario's default
    params = RealisticParams(
        sites=sites,
        lamps_per_site=args.lamps,
        hours=args.hours + 2 if args.hours == 24 else args.hours,
        seed=args.seed,
    )
    result = evaluate_realistic(params)
    print(json.dumps(result, indent=None if args.json else 2, sort_keys=True))
    return 0 if realistic_goals_met(result) else 1
