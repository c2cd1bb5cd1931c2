"""`luxflow bench --latency`: PutRecord -> fault item in the command model, p50/p99, for the
local runner and the KCL runner, each a real `luxflow worker` child process at its default
settings on emulated AWS on 127.0.0.1 (`benchmarks.latency` does the measuring).

- local runner: kinesalite for Kinesis (moto's PutRecords slows as a shard grows) and moto
  for DynamoDB and Timestream, as `luxflow demo` runs them;
- KCL runner: moto served over HTTP/1.1 and cleartext HTTP/2 (hypercorn) for everything, the
  way the KCL integration tests start it, the MultiLangDaemon from the `.jars` directory.

Only names and endpoints are set on the worker (plus `LUXFLOW_HEALTH_PORT=0`, and Timestream
common attributes off, which moto drops); every cadence (checkpoint interval, poll interval,
the daemon's read interval) is the default of the code being measured. Each run waits until
the worker holds every shard's lease (JVM start, lease assignment; for the KCL runner, until
its shard processors run) before the fleet starts sending, so no start-up backlog is
measured. From the fleet's first reading on, the plan's
`cold_faults` are measured apart (the `cold` figures): every asset's first reading writes its
first current state, one conditional put each, the cold start's burst that a fleet which has
been running does not have. Once the fleet has sent for two reading intervals and a probe
fault sent into every shard came through, the plan's `faults` are measured (the headline
figures, after the warm-up); `all_p99_s` is the p99 of both sets together. With
`plan.refresh_ms` the worker refreshes current states that often (every other setting at
its default). Progress goes to stderr; the plan's timeouts bound the run (warm-up 240 s,
each fault 30 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.latency import (
    Background,
    LatencyPlan,
    Measurement,
    Poller,
    fault_order,
    fleet_templates,
    measure_faults,
    percentile,
    progress_line,
    send_fault,
)
from benchmarks.latency_result import ColdStart, RunnerLatency, slowest
from domain.telemetry import Reading
from emulators.kinesalite import Kinesalite
from emulators.moto import MotoServer, emulator_env
from lighting.clients import Clients
from lighting.provision import provision
from lighting.settings import Settings

_ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ("local", "kcl")


def _settings(tag: str, endpoint: str, kinesis_endpoint: str | None) -> Settings:
    return Settings(
        stream=f"{tag}-stream",
        app_name=f"{tag}-leases",
        command_table=f"{tag}-model",
        dead_letter_table=f"{tag}-dead",
        state_table=f"{tag}-state",
        timestream_database=f"{tag}-ts",
        endpoint_url=endpoint,
        kinesis_endpoint_url=kinesis_endpoint or "",
        region="us-east-1",
        timestream_common_attributes=False,
    )


def worker_env(settings: Settings, refresh_ms: int | None = None) -> dict[str, str]:
    """The worker's environment: names and endpoints only, every cadence at its default but
    the current-state refresh when `refresh_ms` is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUXFLOW_")}
    env.update(emulator_env(settings.endpoint_url))
    env.update(
        {
            "LUXFLOW_STREAM": settings.stream,
            "LUXFLOW_APP_NAME": settings.app_name,
            "LUXFLOW_COMMAND_TABLE": settings.command_table,
            "LUXFLOW_DEAD_LETTER_TABLE": settings.dead_letter_table,
            "LUXFLOW_STATE_TABLE": settings.state_table,
            "LUXFLOW_TIMESTREAM_DATABASE": settings.timestream_database,
            "LUXFLOW_TIMESTREAM_COMMON_ATTRIBUTES": "false",
            "LUXFLOW_HEALTH_PORT": "0",
            "LUXFLOW_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")])),
        }
    )
    if settings.kinesis_endpoint_url:
        env["LUXFLOW_KINESIS_ENDPOINT_URL"] = settings.kinesis_endpoint_url
    if refresh_ms is not None:
        env["LUXFLOW_STATE_REFRESH_MS"] = str(refresh_ms)
    return env


@contextlib.contextmanager
def _worker(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The worker in its own process group (the KCL daemon's JVM and processors with it);
    SIGTERM at the end, the group killed if it has not stopped within 60 s."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # processors the daemon left behind


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def checkpoint_ms(log_text: str) -> float | None:
    """The mean of the per-shard CheckpointDurationMs values in a worker's EMF lines."""
    values: list[float] = []
    for line in log_text.splitlines():
        if '"CheckpointDurationMs"' not in line or '"Shard"' not in line:
            continue
        try:
            document = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        value = document.get("CheckpointDurationMs")
        if isinstance(value, int | float):
            values.append(float(value))
    return sum(values) / len(values) if values else None


def _leases(clients: Clients, settings: Settings) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = clients.dynamodb.scan(
        TableName=settings.app_name, ConsistentRead=True
    )["Items"]
    return items


def probes_per_shard(
    clients: Clients, settings: Settings, candidates: Sequence[Reading]
) -> list[Reading]:
    """One candidate asset in every shard: the shard whose hash-key range holds the MD5 of its
    site (the partition key), as Kinesis routes it."""
    shards = clients.kinesis.list_shards(StreamName=settings.stream)["Shards"]
    chosen: dict[str, Reading] = {}
    for reading in candidates:
        key = int.from_bytes(hashlib.md5(reading.site_id.encode()).digest(), "big")
        for shard in shards:
            bounds = shard["HashKeyRange"]
            if int(bounds["StartingHashKey"]) <= key <= int(bounds["EndingHashKey"]):
                chosen.setdefault(shard["ShardId"], reading)
    if len(chosen) < len(shards):
        raise RuntimeError(f"no probe asset for {len(shards) - len(chosen)} shard(s): more sites")
    return list(chosen.values())


def _warm_up(
    clients: Clients,
    settings: Settings,
    m: Measurement,
    *,
    cold: Measurement,
    cold_faults: Sequence[Reading],
    settle_probes: Sequence[Reading],
    process: subprocess.Popen[bytes],
    background: Background,
    progress: Callable[[str], None],
    label: str,
    processors: Callable[[], int] | None = None,
) -> tuple[float, float]:
    """Wait until the worker holds every shard's lease (and, with `processors`, until that
    many shard processors run: the KCL daemon finds a lease assigned to it up to 10 s after
    the lease table names it, then starts a processor), then start the fleet (so that no
    backlog from the JVM's start and the lease assignment is measured) and send
    `cold_faults` into its first round of readings, measured in `cold`; once the fleet has
    sent for two reading intervals, send `settle_probes` (one per shard) and wait until each
    is visible. Returns (seconds taken, monotonic time of the fleet's start)."""
    plan = m.plan
    settle_s = 2 * plan.reading_interval_ms / 1000
    started = time.monotonic()
    last_report = started
    while sum("leaseOwner" in i for i in _leases(clients, settings)) < plan.shards or (
        processors is not None and processors() < plan.shards
    ):
        waited = time.monotonic() - started
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode} in warm-up")
        if waited > plan.warmup_timeout_s:
            raise RuntimeError(f"leases: not held within {plan.warmup_timeout_s:.0f} s")
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            progress(f"{label}: warming up ({waited:.0f} s, waiting for leases, processors)")
        time.sleep(0.5)
    background.start()
    fleet_started = time.monotonic()
    Poller(clients.dynamodb, settings.command_table, cold).start()
    try:
        measure_faults(
            clients.kinesis,
            settings.stream,
            cold_faults,
            cold,
            progress=progress,
            label=f"{label} cold start",
        )
    finally:
        cold.stop.set()
    progress(f"{label}: cold start: {progress_line(cold)}")
    if process.poll() is not None:
        raise RuntimeError(f"the worker exited with {process.returncode} in the cold start")
    probe_m = beside(m, dataclasses.replace(plan, fault_timeout_s=plan.warmup_timeout_s))
    Poller(clients.dynamodb, settings.command_table, probe_m).start()
    try:
        time.sleep(max(0.0, fleet_started + settle_s - time.monotonic()))
        for probe in settle_probes:
            send_fault(clients.kinesis, settings.stream, probe, probe_m)
        while len(probe_m.latencies_s) < len(settle_probes):
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode} in warm-up")
            if probe_m.errors:
                raise RuntimeError(f"warm-up: {probe_m.errors[0]}")
            time.sleep(0.2)
    finally:
        probe_m.stop.set()
    progress(f"{label}: warm, a probe fault seen in every shard ({max(probe_m.latencies_s):.2f} s)")
    return time.monotonic() - started, fleet_started


def kcl_processors(settings: Settings) -> Callable[[], int]:
    """How many KCL shard processors of the worker told it they run: each writes its status
    file on `initialize` (`streams.kcl.status`), in the directory `lighting.observe.status_dir`
    names after the application and the worker's owner name (host and pid, unknown here)."""
    pattern = f"luxflow-{settings.app_name}-*-status/*.json"

    def count() -> int:
        return sum(1 for _ in Path(tempfile.gettempdir()).glob(pattern))

    return count


def beside(m: Measurement, plan: LatencyPlan) -> Measurement:
    """A measurement of other faults sent while `m`'s fleet runs: the same locks and the same
    set of faulted assets, so the background never races a fault of its asset."""
    return Measurement(plan, lock=m.lock, put_lock=m.put_lock, faulted=m.faulted)


def measure_runner(
    runner: str,
    plan: LatencyPlan,
    *,
    jars: Path,
    progress: Callable[[str], None],
) -> RunnerLatency:
    """One runner's figures; an error (an emulator or the worker that failed) is reported in
    the result rather than raised."""
    label = f"latency {runner}"
    tag = f"lat{runner}{uuid.uuid4().hex[:6]}"
    m = Measurement(plan)
    cold = beside(m, plan)
    fleet_started = 0.0
    warmup_s: float | None = None
    error: str | None = None
    log = Path(tempfile.gettempdir()) / f"luxflow-bench-{tag}.log"
    try:
        with contextlib.ExitStack() as stack:
            if runner == "kcl":
                moto = stack.enter_context(MotoServer(http2=True))
                settings = _settings(tag, moto.endpoint, None)
            else:
                moto = stack.enter_context(MotoServer())
                kinesalite = stack.enter_context(Kinesalite())
                settings = _settings(tag, moto.endpoint, kinesalite.endpoint)
            for key, value in emulator_env(moto.endpoint).items():
                os.environ.setdefault(key, value)
            clients = Clients(settings)
            provision(settings, clients, shards=plan.shards)
            templates = fleet_templates(plan.sites, time.time_ns() // 1_000_000)
            order = fault_order(templates, plan.faults + plan.cold_faults + 4 * plan.shards)
            faults = order[: plan.faults]
            cold_faults = order[plan.faults : plan.faults + plan.cold_faults]
            spare = order[plan.faults + plan.cold_faults :]
            command = [sys.executable, "-m", "app", "worker"]
            if runner == "kcl":
                command += ["--runner", "kcl", "--jars", str(jars)]
            progress(
                f"{label}: {plan.sites} sites x 20 assets, ~{plan.background_records_per_s:.0f} "
                f"records/s over {plan.shards} shards; worker log {log}"
            )
            env = worker_env(settings, plan.refresh_ms)
            process = stack.enter_context(_worker(command, env, log))
            background = Background(clients.kinesis, settings.stream, templates, m)
            stack.callback(m.stop.set)
            stack.callback(cold.stop.set)
            try:
                warmup_s, fleet_started = _warm_up(
                    clients,
                    settings,
                    m,
                    cold=cold,
                    cold_faults=cold_faults,
                    settle_probes=probes_per_shard(clients, settings, spare),
                    process=process,
                    background=background,
                    progress=progress,
                    label=label,
                    processors=kcl_processors(settings) if runner == "kcl" else None,
                )
                poller = Poller(clients.dynamodb, settings.command_table, m)
                poller.start()
                measure_faults(
                    clients.kinesis,
                    settings.stream,
                    faults,
                    m,
                    progress=progress,
                    label=label,
                )
            except RuntimeError as exc:
                error = f"{exc}; worker log: {_tail(log)}"
            m.stop.set()
            if background.is_alive():
                background.join(timeout=10)
    except Exception as exc:  # an emulator that did not start, a failed setup
        error = f"{type(exc).__name__}: {exc}"
    try:
        checkpoint = checkpoint_ms(log.read_text(errors="replace"))
    except OSError:
        checkpoint = None
    if error is None and (m.errors or cold.errors):
        problems = cold.errors + m.errors
        error = f"{len(problems)} problems, first: {problems[0]}"
    values = m.latencies_s
    return RunnerLatency(
        runner=runner,
        faults_sent=m.faults_sent,
        faults_seen=len(values),
        p50_s=percentile(values, 0.5),
        p90_s=percentile(values, 0.9),
        p99_s=percentile(values, 0.99),
        max_s=max(values) if values else None,
        background_records=m.background_sent,
        background_records_per_s=m.background_sent / m.background_s if m.background_s else None,
        poll_round_ms=m.poll_seconds / m.poll_rounds * 1000 if m.poll_rounds else None,
        warmup_s=warmup_s,
        checkpoint_ms=checkpoint,
        slowest=slowest(m, min(m.sent_s, default=0.0)),
        cold=ColdStart.of(cold, fleet_started),
        all_p99_s=percentile(values + cold.latencies_s, 0.99),
        error=error,
    )


def measure(
    plan: LatencyPlan, runners: tuple[str, ...], *, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Every runner's figures, one after the other (never both at once on 2 cores)."""
    jars = _ROOT / ".jars"
    results = {}
    for runner in runners:
        progress(f"latency: {runner} runner")
        results[runner] = measure_runner(runner, plan, jars=jars, progress=progress).as_json()
    return {
        "plan": {
            "faults": plan.faults,
            "sites": plan.sites,
            "assets": plan.sites * 20,
            "reading_interval_ms": plan.reading_interval_ms,
            "background_records_per_s_planned": round(plan.background_records_per_s, 1),
            "shards": plan.shards,
            "fault_every_ms": plan.fault_every_ms,
            "cold_faults": plan.cold_faults,
            "refresh_ms": plan.refresh_ms,
        },
        "settings": "defaults of the code measured (only names and endpoints set)"
        + ("" if plan.refresh_ms is None else f", LUXFLOW_STATE_REFRESH_MS={plan.refresh_ms}"),
        "runners": results,
    }
