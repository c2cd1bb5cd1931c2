"""Replay throughput end to end: `luxflow replay --from trim-horizon --yes --run` over a stream
of simulated telemetry on a moto server (Kinesis, DynamoDB, Timestream) on 127.0.0.1.

    python -m benchmarks.replay [--sites N] [--hours H] [--shards S]

Prints one table: records replayed, wall time, the replaying process's CPU time (its own
rusage, so the emulator's CPU is not counted), records/s per core (records / CPU seconds), and
what one site-week (the simulator's site: 10 assets, one reading a minute) takes at that rate.
The stream is filled and read once by `luxflow worker` first, so the replay rewrites items
that exist, as an operator's replay does. Then the same records are archived as the archive
path writes them (`benchmarks.archive_path`: one GZIP object per simulated hour) and replayed
with `luxflow replay --archive` (the archive rows of the table).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.archive_path import stream_records, write_archive
from core.clock import HOUR_MS
from domain.registry import encode_registry
from emulators.moto import MotoServer, emulator_env
from sim.params import SimParams
from sim.simulation import Simulation
from streams.kinesis.producer import Producer

ROOT = Path(__file__).resolve().parents[1]
WEEK_MS = 7 * 24 * HOUR_MS


def _luxflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )


def _timed(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """Run `luxflow ARGS`; its wall time, its own CPU time (user + system) and stderr."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if child.returncode != 0:
        raise RuntimeError(f"luxflow {' '.join(args)} exited {child.returncode}: {stderr[-2000:]}")
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime, stderr


def measure(sites: int, hours: int, shards: int) -> dict[str, float]:
    now_ms = time.time_ns() // 1_000_000
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    params = SimParams(
        sites=sites,
        buildings_per_site=1,
        rooms_per_building=2,
        lamps_per_room=4,
        sensors_per_room=1,
        start_ms=end_ms - hours * HOUR_MS,
        duration_ms=hours * HOUR_MS,
        interval_ms=60_000,
        seed=3,
        fault_count=sites,
        spike_count=sites,
    )
    simulation = Simulation(params)
    with MotoServer() as server, tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            **emulator_env(server.endpoint),
            "LUXFLOW_STREAM": "bench-replay",
            "LUXFLOW_APP_NAME": "bench-replay-leases",
            "LUXFLOW_COMMAND_TABLE": "bench-replay-model",
            "LUXFLOW_DEAD_LETTER_TABLE": "bench-replay-dead",
            "LUXFLOW_STATE_TABLE": "bench-replay-state",
            "LUXFLOW_TIMESTREAM_DATABASE": "bench-replay",
            "LUXFLOW_TIMESTREAM_COMMON_ATTRIBUTES": "false",
            "LUXFLOW_IDLE_TIMEOUT_MS": "2000",
            "LUXFLOW_POLL_INTERVAL_MS": "200",
            "LUXFLOW_FAILOVER_MS": "3000",
            "LUXFLOW_HEALTH_PORT": "0",
            "LUXFLOW_METRICS_EMF": "off",
            "LUXFLOW_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        _luxflow(env, "setup", "--shards", str(shards))
        registry = Path(tmp) / "registry.json"
        registry.write_bytes(
            encode_registry(simulation.registry(), simulation.site_defaults().values())
        )
        _luxflow(env, "registry", "import", str(registry))
        import boto3

        kinesis = boto3.client(
            "kinesis",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        producer = Producer(kinesis, env["LUXFLOW_STREAM"])
        producer.send(simulation.records())
        records = producer.counters.records
        _luxflow(env, "worker", "--stop-when-idle-s", "3")
        wall_s, cpu_s, stderr = _timed(
            env, "replay", "--from", "trim-horizon", "--yes", "--run", "--progress-s", "30"
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="bench-replay-archive")
        archived = stream_records(kinesis, env["LUXFLOW_STREAM"])
        write_archive(s3, "bench-replay-archive", "raw/", archived, buffers=hours)
        archive_wall_s, archive_cpu_s, archive_err = _timed(
            env, "replay", "--archive", "s3://bench-replay-archive/raw/", "--yes"
        )
    if f"luxflow replay: {records} records read from the archive" not in archive_err:
        raise RuntimeError(f"the archive replay did not read {records}: {archive_err[-2000:]}")
    match = re.search(r"luxflow replay: (\d+) records read", stderr)
    replayed = int(match.group(1)) if match else 0
    if replayed != records:
        raise RuntimeError(f"replayed {replayed} of {records} records: {stderr[-2000:]}")
    per_core = records / cpu_s
    site_week_records = len(simulation.assets) / sites * WEEK_MS / params.interval_ms
    return {
        "records": records,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "records_per_s_wall": records / wall_s,
        "records_per_s_per_core": per_core,
        "site_week_records": site_week_records,
        "site_week_s": site_week_records / (records / wall_s),
        "archive_wall_s": archive_wall_s,
        "archive_cpu_s": archive_cpu_s,
        "archive_site_week_s": site_week_records / (records / archive_wall_s),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__)
    parser.add_argument("--sites", type=int, default=2, help="simulated sites of 10 assets")
    parser.add_argument("--hours", type=int, default=24, help="simulated hours")
    parser.add_argument("--shards", type=int, default=2, help="shards of the stream")
    args = parser.parse_args(argv)
    figures = measure(args.sites, args.hours, args.shards)
    print("| figure | value |")
    print("|---|---|")
    print(f"| records replayed | {figures['records']:,.0f} |")
    print(
        f"| wall time / CPU time of the replaying process | {figures['wall_s']:.1f} s / "
        f"{figures['cpu_s']:.1f} s |"
    )
    print(f"| replay end to end, records/s (wall) | {figures['records_per_s_wall']:,.0f} |")
    print(f"| replay end to end, records/s per core | {figures['records_per_s_per_core']:,.0f} |")
    print(
        f"| one site-week ({figures['site_week_records']:,.0f} records) at that rate | "
        f"{figures['site_week_s']:.1f} s |"
    )
    print(
        f"| from the archive (S3, {args.hours} objects): wall / CPU time | "
        f"{figures['archive_wall_s']:.1f} s / {figures['archive_cpu_s']:.1f} s |"
    )
    print(
        f"| from the archive, records/s per core | "
        f"{figures['records'] / figures['archive_cpu_s']:,.0f} |"
    )
    print(
        f"| one site-week from the archive at that rate (wall) | "
        f"{figures['archive_site_week_s']:.1f} s |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
