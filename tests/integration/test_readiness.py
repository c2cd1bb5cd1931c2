"""/readyz follows a shard's progress: a shard whose sink keeps failing (throttled on every
BatchWriteItem, injected by the fault wrapper around the real client) turns the worker
not-ready once it has not checkpointed for `readiness_checkpoint_intervals` checkpoint
intervals; once the store recovers the shard checkpoints and the worker is ready again.
`luxflow health` (the container health check) follows both ways."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulators.moto import emulator_env
from lighting.clients import Clients
from lighting.observe import Observability, registry_stats
from lighting.settings import Settings
from lighting.worker import local_runner, worker_views
from streams.observe.status import local_worker_status
from tests.support.deployment import ROOT, Deployment, recent_params
from tests.support.faulty import FaultyClient
from tests.support.observability import free_port, readyz, scrape, total

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.25)


def health_command(port: int) -> int:
    """The container health check's exit status."""
    return subprocess.run(
        [sys.executable, "-m", "app", "health", "--url", f"http://127.0.0.1:{port}/readyz"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode


def test_a_failing_sink_turns_readyz_not_ready_and_recovery_ready_again(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in emulator_env(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    deployment = Deployment(moto_endpoint, aws, unique_name("ready"), tmp_path)
    deployment.setup(shards=1)
    simulation, _ = deployment.simulation(recent_params(sites=1, hours=1, fault_count=0))
    sent = deployment.send(simulation.records())
    port = free_port()
    settings = Settings.from_env(
        {
            **deployment.env,
            "LUXFLOW_HEALTH_PORT": str(port),
            "LUXFLOW_HEALTH_HOST": "127.0.0.1",
            "LUXFLOW_PROMETHEUS_PORT": str(port),
            "LUXFLOW_METRICS_EMF": "off",
            "LUXFLOW_CHECKPOINT_INTERVAL_MS": "1000",
        }
    )
    clients = Clients(settings)
    faulty = FaultyClient(clients.dynamodb)
    clients.dynamodb = faulty
    views = worker_views(settings, clients)
    # Every sink flush fails from now on: command writes are conditional puts (state, faults,
    # spikes, reports), dead letters and plain items go in batches. (Leases use put_item too:
    # only the command table's puts fail.)
    faulty.throttle("batch_write_item", 10**9)
    faulty.outage(
        "put_item", "throttle", 10**6, when=lambda r: r.get("TableName") == settings.command_table
    )
    runner = local_runner(settings, clients, views)
    limit_ms = 3 * settings.checkpoint_interval_ms
    stats = registry_stats(views.registry)
    with views, Observability(settings, lambda: local_worker_status(runner, stats)):
        worker = threading.Thread(target=runner.run, name="worker", daemon=True)
        worker.start()
        try:
            wait_for(lambda: readyz(port)[0] == 503, "not ready")
            status, body = readyz(port)
            assert status == 503
            assert body["max_checkpoint_age_ms"] == limit_ms
            assert max(body["checkpoint_age_ms"].values()) > limit_ms
            assert health_command(port) == 1
            # Not ready already while the sink still retries; the error follows.
            wait_for(lambda: total(scrape(port), "luxflow_sink_errors_total") >= 1, "sink error")
            values = scrape(port)
            assert total(values, "luxflow_checkpoint_age_ms") > limit_ms
            assert readyz(port)[0] == 503
            assert total(values, "luxflow_checkpoints_total") == 0

            for operation in ("batch_write_item", "put_item"):
                faulty.heal(operation)
            wait_for(lambda: readyz(port)[0] == 200, "ready again")
            assert health_command(port) == 0
            wait_for(lambda: deployment.checkpointed_shards() == 1, "a checkpoint")
            assert total(scrape(port), "luxflow_checkpoints_total") >= 1
            assert total(scrape(port), "luxflow_records_read_total") >= sent
        finally:
            runner.stop()
            worker.join(timeout=120)
    assert not worker.is_alive()
