"""Resident memory and start time of one `luxflow kcl-processor` process.

The KCL MultiLangDaemon starts one processor process per leased shard, so a worker holding 64
shards runs 64 of them: their resident memory is the runner's footprint. This starts the real
command (`python -m app kcl-processor`) against emulated AWS on 127.0.0.1 (moto, with the
deployment's tables created), speaks the daemon's side of the protocol on its stdin
(`initialize`, then `shutdownRequested`, then end of input) and reads the child's resident
set size once it has initialized (VmRSS, and its peak so far, VmHWM). Start time: from
spawning to the status line answering `initialize` (imports, settings, AWS clients, engine,
state loaded). Best of N.

moto is served over plain HTTP, so the processor measured never builds a TLS context; in
production every endpoint is HTTPS. `tls_context_mb` is what building the light client's TLS
context (certifi's CA bundle, as botocore verifies against) adds to a process that has
imported the processor's modules: production's figure is `rss_mb + tls_context_mb`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]

SHARD_ID = "shardId-000000000000"


@dataclass(frozen=True)
class FootprintResult:
    rss_mb: float | None
    """Resident set size once initialized, waiting for records (what it holds while running)."""
    peak_rss_mb: float | None
    """Peak resident set size up to then (VmHWM)."""
    start_s: float | None
    runs: int
    error: str | None = None
    tls_context_mb: float | None = None
    """Resident memory a processor's TLS context adds (production endpoints are HTTPS)."""


def _protocol_lines() -> list[bytes]:
    initialize = {
        "action": "initialize",
        "shardId": SHARD_ID,
        "sequenceNumber": "TRIM_HORIZON",
        "subSequenceNumber": 0,
    }
    return [json.dumps(initialize).encode() + b"\n", b'{"action":"shutdownRequested"}\n']


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUXFLOW_")}
    env.update(
        {
            "LUXFLOW_ENDPOINT_URL": endpoint,
            "LUXFLOW_LOG_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")])),
        }
    )
    return env


def one_processor(endpoint: str) -> tuple[float, float, float]:
    """(peak RSS in MB, seconds to the `initialize` status, RSS in MB once initialized and
    waiting for records) of one processor process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "app", "kcl-processor"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(endpoint),
        cwd=_ROOT,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    init, shutdown = _protocol_lines()
    child.stdin.write(init)
    child.stdin.flush()
    status = child.stdout.readline()
    start_s = time.perf_counter() - started
    steady_mb, peak_mb = _vm_mb(child.pid, "VmRSS:"), _vm_mb(child.pid, "VmHWM:")
    child.stdin.write(shutdown)
    child.stdin.close()
    child.stdout.read()
    errors = child.stderr.read().decode(errors="replace")
    child.wait()
    if b'"responseFor":"initialize"' not in status or child.returncode != 0:
        tail = errors.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"kcl-processor exited {child.returncode}: {tail[0]}")
    return peak_mb, start_s, steady_mb


def _vm_mb(pid: int, field: str) -> float:
    """A memory figure of `pid` from Linux' /proc/<pid>/status (`VmRSS:` now, `VmHWM:` peak),
    in MB. Not `ru_maxrss` from wait4: Linux keeps it across execve, so a child forked from
    a large parent reports the parent's size."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


_TLS_PROBE = """
import cli.kcl_processor
from lighting.aws.http import ConnectionPool
def rss_kb():
    with open('/proc/self/status') as status:
        return next(int(l.split()[1]) for l in status if l.startswith('VmRSS:'))
before = rss_kb()
ConnectionPool()._tls_context()
print(rss_kb() - before)
"""


def tls_context_mb() -> float:
    """What the TLS context adds to a process with the processor's modules imported, in MB."""
    probe = subprocess.run(
        [sys.executable, "-c", _TLS_PROBE],
        capture_output=True,
        check=True,
        cwd=_ROOT,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )
    return int(probe.stdout.split()[-1]) / 1024


def measure(repeat: int = 3) -> FootprintResult:
    """Best of `repeat` processor runs against a moto server with the tables created."""
    try:
        from emulators.moto import MotoServer
        from lighting.clients import Clients
        from lighting.provision import provision
        from lighting.settings import Settings
    except ModuleNotFoundError as exc:
        return FootprintResult(None, None, None, 0, f"emulators not installed: {exc}")
    try:
        with MotoServer() as server:
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
            settings = Settings(endpoint_url=server.endpoint)
            provision(settings, Clients(settings))
            runs = [one_processor(server.endpoint) for _ in range(repeat)]
    except Exception as exc:
        return FootprintResult(None, None, None, 0, f"kcl-processor footprint failed: {exc!r}")
    return FootprintResult(
        rss_mb=round(min(r[2] for r in runs), 1),
        peak_rss_mb=round(min(r[0] for r in runs), 1),
        start_s=round(min(r[1] for r in runs), 3),
        runs=len(runs),
        tls_context_mb=round(min(tls_context_mb() for _ in range(repeat)), 1),
    )


if __name__ == "__main__":
    print(measure())
