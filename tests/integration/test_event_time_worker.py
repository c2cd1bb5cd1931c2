"""The event clock in the real worker (local runner, in-process, real boto3 clients on moto):
a backfill that pauses longer than the idle timeout, a read outage that ends in expired
iterators, and one device 14 minutes fast. Each leaves the honest devices' items exactly as
a run without it: no false offline fault, no `late` dead letter, the same usage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.clock import HOUR_MS, MINUTE_MS, SECOND_MS
from domain.telemetry import Telemetry, encode_telemetry
from domain.timestamps import format_ts
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.worker import run_local_worker
from streams.kinesis.local_runner import LocalRunner
from tests.support.deployment import Deployment
from tests.support.faulty import client_error

pytestmark = pytest.mark.integration

LAMPS = ("lamp-1", "lamp-2", "lamp-3", "lamp-4")
SAFETY_S = 120.0
"""Not an assertion: a worker still running then is stopped so the test fails on its results."""


def reading(asset: str, ts_ms: int, *, site: str = "site-1") -> tuple[str, bytes]:
    power = 40.0 + LAMPS.index(asset) if asset in LAMPS else 50.0
    return site, encode_telemetry(
        Telemetry(
            v=1,
            site_id=site,
            building_id="b-1",
            room_id="r-1",
            asset_id=asset,
            ts=format_ts(ts_ms),
            power_w=power,
            voltage_v=230.0,
            current_a=power / 230.0,
            lux=300.0,
            on=True,
            dim_level=100,
        )
    )


def backlog(start_ms: int, minutes: int) -> list[tuple[str, bytes]]:
    """Every lamp every 30 s for `minutes`, in time order."""
    return [
        reading(asset, start_ms + step * 30 * SECOND_MS)
        for step in range(minutes * 2)
        for asset in LAMPS
    ]


class Worker:
    """`run_local_worker` in a thread, with its clients wrapped by `wrap`."""

    def __init__(self, deployment: Deployment, monkeypatch: pytest.MonkeyPatch, **env: str):
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, deployment.env[name])
        self.settings = Settings.from_env({**deployment.env, "LUXFLOW_IDLE_CLOSE": "lag", **env})
        self.clients = Clients(self.settings)
        self.runner: LocalRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        def on_runner(runner: LocalRunner) -> None:
            self.runner = runner
            self._ready.set()
            threading.Timer(SAFETY_S, runner.stop).start()

        run_local_worker(self.settings, self.clients, on_runner=on_runner)

    def start(self) -> Worker:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def records(self) -> int:
        assert self.runner is not None
        return sum(p.records for p in self.runner.progress.values())

    def wait_for(self, records: int) -> None:
        """Until `records` were read and everything they produced is checkpointed."""
        deadline = time.monotonic() + SAFETY_S
        while time.monotonic() < deadline:
            progress = [] if self.runner is None else list(self.runner.progress.values())
            settled = all(p.processor is None or p.processor.settled for p in progress)
            if self.records() >= records and settled:
                return
            time.sleep(0.2)
        raise AssertionError(f"read {self.records()} of {records} records")

    def stop(self) -> None:
        assert self.runner is not None
        self.runner.stop()
        self._thread.join(60)


def outcome(deployment: Deployment) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    items = [i for i in deployment.items() if i.get("site_id", "site-1") == "site-1"]
    letters = sorted((d.origin, d.reason) for d in deployment.dead_letters())
    return items, letters


def new_deployment(
    moto_endpoint: str, aws: Callable[[str], Any], name: str, tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, name, tmp_path / name)
    (tmp_path / name).mkdir()
    deployment.setup(shards=1)
    return deployment


def test_a_backfill_that_pauses_longer_than_the_idle_timeout_changes_nothing(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A gateway uploads three hours late what it buffered: 40 minutes of readings, in two
    # parts with a pause of 3x the idle timeout (2 s here) between them.
    now_ms = time.time_ns() // 1_000_000
    start_ms = now_ms - now_ms % HOUR_MS - 3 * HOUR_MS + 5 * MINUTE_MS
    first, second = backlog(start_ms, 20), backlog(start_ms + 20 * MINUTE_MS, 20)

    straight = new_deployment(moto_endpoint, aws, unique_name("bf0"), tmp_path)
    straight.send(first + second)
    worker = Worker(straight, monkeypatch).start()
    worker.wait_for(len(first) + len(second))
    worker.stop()

    paused = new_deployment(moto_endpoint, aws, unique_name("bf1"), tmp_path)
    paused.send(first)
    worker = Worker(paused, monkeypatch).start()
    worker.wait_for(len(first))
    time.sleep(6)  # the producer pauses; the shard is caught up and quiet
    paused.send(second)
    worker.wait_for(len(first) + len(second))
    worker.stop()

    items, letters = outcome(paused)
    assert letters == []
    assert not [i for i in items if i.get("code") == "offline"]
    assert items == outcome(straight)[0]


class ExpiringReads:
    """Kinesis whose GetRecords answers ExpiredIteratorException for `seconds` once armed:
    each read then comes back empty with no MillisBehindLatest."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.until_s = 0.0
        self.expired = 0

    def arm(self, seconds: float) -> None:
        self.until_s = time.monotonic() + seconds

    def get_records(self, **kwargs: Any) -> Any:
        if time.monotonic() < self.until_s:
            self.expired += 1
            raise client_error("GetRecords", "ExpiredIteratorException", "Iterator expired")
        return self._client.get_records(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_outage_that_ends_in_expired_iterators_is_not_idleness(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now_ms = time.time_ns() // 1_000_000
    start_ms = now_ms - now_ms % HOUR_MS - HOUR_MS + 5 * MINUTE_MS
    first, second = backlog(start_ms, 20), backlog(start_ms + 20 * MINUTE_MS, 20)

    straight = new_deployment(moto_endpoint, aws, unique_name("ex0"), tmp_path)
    straight.send(first + second)
    worker = Worker(straight, monkeypatch).start()
    worker.wait_for(len(first) + len(second))
    worker.stop()

    faulted = new_deployment(moto_endpoint, aws, unique_name("ex1"), tmp_path)
    faulted.send(first)
    worker = Worker(faulted, monkeypatch)
    reads = ExpiringReads(worker.clients.kinesis)
    worker.clients.kinesis = reads
    worker.start()
    worker.wait_for(len(first))
    reads.arm(6.0)  # three idle timeouts of reads that come back empty, proving nothing
    faulted.send(second)
    time.sleep(6)
    worker.wait_for(len(first) + len(second))
    worker.stop()

    assert reads.expired > 0
    items, letters = outcome(faulted)
    assert letters == []
    assert not [i for i in items if i.get("code") == "offline"]
    assert items == outcome(straight)[0]


def test_one_device_fourteen_minutes_fast_costs_the_others_nothing(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Live readings, one a second for 20 s, with a 20 s grace so that minute windows close
    # while the test runs; lamp-fast (another site, same shard) runs 14 minutes ahead.
    deployment = new_deployment(moto_endpoint, aws, unique_name("fast"), tmp_path)
    worker = Worker(
        deployment,
        monkeypatch,
        LUXFLOW_WINDOW_GRACE_MS="20000",
        LUXFLOW_MAX_CLOCK_SKEW_MS="5000",
    ).start()
    sent = 0
    for _ in range(20):
        now_ms = time.time_ns() // 1_000_000
        batch = [reading(asset, now_ms) for asset in LAMPS]
        batch.append(reading("lamp-fast", now_ms + 14 * MINUTE_MS, site="site-2"))
        sent += deployment.send(batch)
        time.sleep(1)
    worker.wait_for(sent)
    worker.stop()

    letters = deployment.dead_letters()
    assert [d.origin for d in letters if d.origin == "late"] == []
    skewed = [d for d in letters if d.reason.startswith("clock_skew")]
    assert len(skewed) == 20
    assert {d.partition_key for d in skewed} == {"site-2"}
    states = {i["asset_id"]: i for i in deployment.items() if i.get("type") == "asset_state"}
    assert set(states) == set(LAMPS)
