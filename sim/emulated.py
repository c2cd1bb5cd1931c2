"""The real pipeline on emulated AWS, in one process: moto (DynamoDB, Timestream) and
kinesalite (Kinesis) on 127.0.0.1, a producer sending a simulation, a local worker consuming
it, and what it stored read back. Used by `luxflow demo` and `luxflow evaluate`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from cli.base import info, plural
from core.clock import HOUR_MS, wall_clock_ms
from core.errors import LuxflowError
from core.records import DeadLetter
from domain.events import EnergySpike, Fault, UsageReport
from domain.registry import RegistryImport, encode_registry
from domain.timestamps import format_ts
from emulators.influxd import Influxd
from emulators.kinesalite import Kinesalite
from emulators.moto import MotoServer, emulator_env
from lighting.clients import Clients
from lighting.provision import events_of, provision, read_command_model
from lighting.read.model import read_model
from lighting.registry import store_registry
from lighting.settings import Settings
from lighting.worker import run_local_worker
from sim.evaluation import ASSET_HOURLY, Evaluation, evaluate
from sim.malformed import MALFORMED_SAMPLES, with_malformed
from sim.params import SimParams
from sim.simulation import Simulation
from sinks.deadletter import read_dead_letters
from streams.kinesis.local_runner import LocalRunner
from streams.kinesis.producer import Producer


def on_emulators(
    settings: Settings, moto_endpoint: str, kinesis_endpoint: str, **overrides: Any
) -> Settings:
    """`settings` pointed at the emulators on 127.0.0.1, with the cadences of a demo: a
    checkpoint every 2 s and a poll every 250 ms, so what is sent shows within seconds."""
    values: dict[str, Any] = {
        "endpoint_url": moto_endpoint,
        "kinesis_endpoint_url": kinesis_endpoint,
        "region": "us-east-1",
        "timestream_common_attributes": False,
        "checkpoint_interval_ms": 2_000,
        "poll_interval_ms": 250,
        **overrides,
    }
    return dataclasses.replace(settings, **values)


def simulation_of(args: Any) -> Simulation:
    """The simulation the demo's arguments describe, ending an hour before now."""
    now_ms = wall_clock_ms()
    # End the simulated period an hour before now, on an hour boundary, so every hourly
    # window can close and no reading is in the future.
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    duration_ms = int(args.hours * HOUR_MS)
    return Simulation(
        SimParams(
            sites=args.sites,
            buildings_per_site=args.buildings,
            rooms_per_building=args.rooms,
            lamps_per_room=args.lamps,
            sensors_per_room=1,
            start_ms=end_ms - duration_ms,
            duration_ms=duration_ms,
            interval_ms=args.interval_s * 1000,
            seed=args.seed,
            fault_count=args.faults,
            spike_count=args.spikes,
        )
    )


def simulated_registry(simulation: Simulation) -> RegistryImport:
    return RegistryImport(simulation.registry(), list(simulation.site_defaults().values()), [])


def write_registry(simulation: Simulation, path: Path) -> None:
    """The simulated fleet and its site thresholds, in the form `luxflow registry import` reads."""
    registry = simulated_registry(simulation)
    path.write_bytes(encode_registry(registry.assets, registry.sites))


@dataclass
class EmulatedRun:
    """What one run of the real pipeline on emulated AWS left behind."""

    items: list[dict[str, Any]]
    dead_letters: list[DeadLetter]
    timestream_points: int | None
    runner_errors: list[str]
    producer_errors: list[str]
    query_results: list[str] = dataclasses.field(default_factory=list)
    """With the InfluxDB query model: a few `luxflow query` results."""


def run_on_emulated_aws(
    settings: Settings,
    simulation: Simulation,
    *,
    shards: int,
    malformed: bool,
    progress: bool,
    query_model: str = "timestream",
) -> EmulatedRun:
    """Start moto (DynamoDB, Timestream) and kinesalite (Kinesis) on 127.0.0.1, create
    everything, import the simulated registry, send the simulation (with the malformed samples
    if asked) while a local worker consumes it, stop the worker once all was read and the
    windows closed, and read back what was stored. kinesalite, because moto's PutRecords slows
    down as a shard grows (about 2,000 records/s at 50,000 records in a shard)."""
    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(MotoServer())
        kinesalite = stack.enter_context(Kinesalite())
        influx_settings: dict[str, Any] = {}
        if query_model == "influxdb":  # a real influxd as Timestream for InfluxDB
            influxd = stack.enter_context(Influxd())
            influx_settings = {
                "query_model": "influxdb",
                "influxdb_url": influxd.endpoint,
                "influxdb_token": influxd.token,
            }
            info(f"InfluxDB 1.8.10 on {influxd.endpoint}")
        for key, value in emulator_env(moto.endpoint).items():
            os.environ.setdefault(key, value)
        settings = on_emulators(
            settings,
            moto.endpoint,
            kinesalite.endpoint,
            # The simulated data is hours old: a shard idle this long moves its event clock to
            # now (every asset then looks offline). A producer stalled by a loaded machine must
            # not look like the end of the data, so the idle close waits 8 s, not the 3 s that
            # would make the demo a few seconds faster.
            idle_timeout_ms=8_000,
            **influx_settings,
        )
        info(f"emulated AWS on 127.0.0.1: moto {moto.endpoint}, kinesalite {kinesalite.endpoint}")
        clients = Clients(settings)
        provision(settings, clients, shards=shards)
        store_registry(clients.dynamodb, settings.command_table, simulated_registry(simulation))
        records = sum(simulation.reading_count(a) for a in simulation.assets)
        total = records + (len(MALFORMED_SAMPLES) if malformed else 0)
        producer = Producer(clients.kinesis, settings.stream)
        sent = threading.Event()
        producer_errors: list[str] = []

        def produce() -> None:
            stream: Iterable[tuple[str, bytes]] = simulation.records()
            try:
                producer.send(with_malformed(stream, every=2_000) if malformed else stream)
            except LuxflowError as exc:
                producer_errors.append(str(exc))
            finally:
                sent.set()

        runner_box: list[LocalRunner] = []
        worker = threading.Thread(
            target=run_local_worker,
            args=(settings, clients),
            # The demo's input ends with the simulation: every window closes once it is read.
            kwargs={"on_runner": runner_box.append, "bounded": True},
            name="worker",
            daemon=True,
        )
        threading.Thread(target=produce, name="producer", daemon=True).start()
        worker.start()
        watch_run(producer, runner_box, sent, total, settings, progress=progress)
        worker.join()
        return EmulatedRun(
            items=read_command_model(clients, settings),
            dead_letters=read_dead_letters(clients.dynamodb, settings.dead_letter_table),
            timestream_points=(
                0
                if influx_settings
                else timestream_point_count(moto.endpoint, settings.timestream_database)
            ),
            runner_errors=runner_box[0].errors,
            producer_errors=producer_errors,
            query_results=demo_queries(settings, clients, simulation) if influx_settings else [],
        )


def evaluate_run(
    truth: Any, run: EmulatedRun, settings: Settings, usage_scopes: Any = None
) -> Evaluation:
    """Scores of a run; only usage windows that could close by now (end plus grace) count."""
    return evaluate(
        truth,
        events_of(run.items, Fault, "fault"),
        events_of(run.items, EnergySpike, "energy_spike"),
        events_of(run.items, UsageReport, "usage_report"),
        usage_scopes=usage_scopes or ASSET_HOURLY,
        closed_by_ms=wall_clock_ms() - settings.window_grace_ms,
    )


def watch_run(
    producer: Any,
    runner_box: list[LocalRunner],
    sent: threading.Event,
    total: int,
    settings: Settings,
    *,
    progress: bool,
) -> None:
    """Print progress; stop the worker once everything was sent, read and windows closed."""
    quiet_needed_s = settings.idle_timeout_ms / 1000 + 2.0
    shown: tuple[int, int, int] | None = None
    waiting_shown = False
    while True:
        time.sleep(1.0)
        if not runner_box:
            continue
        runner = runner_box[0]
        processed = sum(p.records for p in runner.progress.values())
        # A line when something moved, not one a second while the windows wait to close.
        now_shown = (producer.counters.records, processed, len(runner.progress))
        if progress and now_shown != shown:
            shown = now_shown
            info(
                f"  sent {producer.counters.records:>7}/{total}  read {processed:>7}  "
                f"shards {len(runner.progress)}"
            )
        if not sent.is_set():
            continue
        if progress and not waiting_shown and processed >= producer.counters.records:
            waiting_shown = True
            info(
                f"  all read; the open windows close after {quiet_needed_s:.0f} s without "
                "records (the idle rule, LUXFLOW_IDLE_TIMEOUT_MS)"
            )
        now = time.monotonic()
        quiet = [
            p.ended or (p.quiet_since_s is not None and now - p.quiet_since_s >= quiet_needed_s)
            for p in runner.progress.values()
        ]
        if processed >= producer.counters.records and quiet and all(quiet):
            runner.stop()
            return


def timestream_point_count(endpoint: str, database: str) -> int | None:
    """Records moto holds in `database` (its `/moto-api/data.json`; emulator only); None when
    moto does not answer in time. The figure is informative only, and moto dumps its whole
    state to answer, which on a loaded machine can take tens of seconds."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=120) as response:
            data = msgspec.json.decode(response.read())
    except OSError as exc:
        info(f"the Timestream points were not counted: moto's state dump failed ({exc})")
        return None
    tables = data.get("timestreamwrite", {}).get("TimestreamTable", [])
    return sum(len(t.get("records", [])) for t in tables if t.get("db_name") == database)


def demo_queries(settings: Settings, clients: Clients, simulation: Simulation) -> list[str]:
    """A few read-side results of the run: the fleet, one building's open faults
    and each site's energy per hour, read as `luxflow query` reads them."""
    model = read_model(settings, clients)
    params = simulation.params
    lines = [
        f"  {s.site_id}: {plural(s.buildings, 'building')}, {plural(s.assets, 'asset')}, "
        f"{plural(s.open_faults, 'open fault')}, {plural(s.spikes_last_day, 'spike')} in the "
        "last day"
        for s in model.command.fleet_summary(wall_clock_ms())
    ]
    asset = simulation.assets[0]
    faults = model.command.open_faults(asset.site_id, asset.building_id, limit=1000).items
    lines.append(f"  {asset.building_id}: {plural(len(faults), 'open fault')}")
    end_ms = params.start_ms + params.duration_ms
    energy = model.energy.energy("site", "1h", params.start_ms, end_ms, limit=10_000).items
    for row in energy:
        lines.append(
            f"  energy {row.site_id} hour {format_ts(row.window_start_ms)}: {row.kwh:.3f} kWh"
        )
    return lines
