"""The fault matrix: every AWS call the worker makes, under bursts of
each fault kind, and one call failing for a long time; the worker never exits and DynamoDB and
Timestream end equal to a clean run, item for item.

The worker runs in-process (`lighting.worker.run_local_worker`) on real boto3 clients talking
HTTP to the moto server, each wrapped in `tests.support.faulty.FaultyClient`:

- one run per fault kind (throttle, 5xx, connection refused, connection reset, read timeout
  after the call took effect) with bursts on EVERY operation of the three clients at once:
  2 calls failing in a row out of every 5 calls of each operation. One run per kind rather
  than one per (call, kind) keeps the matrix at 5 runs; the test asserts that every operation
  the worker called was faulted.
- one run where BatchWriteItem (the command model and dead letters) fails with 503 for
  `OUTAGE_S` seconds of wall clock: longer than the whole retry budget of one call (16 s) and
  than the lease failover (3 s here), so shards fail, back off, stop reading (full buffers)
  and must keep their leases. 60 s in the issue; 20 s here keeps the suite fast and covers the
  same path (the length only adds rounds of the same backoff).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lighting.clients import Clients
from lighting.settings import Settings
from lighting.worker import run_local_worker
from sim.malformed import with_malformed
from sim.params import SimParams
from streams.kinesis.local_runner import LocalRunner
from tests.support.deployment import Deployment, recent_params
from tests.support.faulty import FAULT_KINDS, FaultyClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 20.0
SAFETY_STOP_S = 240.0
"""Not an assertion: a worker still running then is stopped so the test fails on its
results, instead of hanging the suite."""


class Outcome:
    def __init__(self, deployment: Deployment, runner: LocalRunner, safety_stopped: bool) -> None:
        self.items = deployment.items()
        self.timestream = deployment.timestream_view()
        self.dead_letters = sorted(
            (d.origin, d.reason, d.data, d.partition_key) for d in deployment.dead_letters()
        )
        self.unhealthy = runner.unhealthy()
        self.safety_stopped = safety_stopped
        self.records = sum(p.records for p in runner.progress.values())


def run_worker(
    deployment: Deployment, wrap: Callable[[Clients], None], monkeypatch: pytest.MonkeyPatch
) -> Outcome:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, deployment.env[name])
    settings = Settings.from_env(deployment.env)
    clients = Clients(settings)
    wrap(clients)
    done = threading.Event()
    safety_stopped: list[bool] = []

    def on_runner(runner: LocalRunner) -> None:
        def safety() -> None:
            if not done.wait(SAFETY_STOP_S):
                safety_stopped.append(True)
                runner.stop()

        threading.Thread(target=safety, daemon=True).start()

    runner = run_local_worker(settings, clients, stop_when_idle_ms=4_000, on_runner=on_runner)
    done.set()
    return Outcome(deployment, runner, bool(safety_stopped))


@pytest.fixture(scope="module")
def params() -> SimParams:
    return recent_params(sites=2, hours=1, fault_count=2, spike_count=2)


@pytest.fixture
def make_deployment(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    params: SimParams,
) -> Iterator[Callable[[], Deployment]]:
    def make() -> Deployment:
        deployment = Deployment(moto_endpoint, aws, unique_name("fx"), tmp_path)
        deployment.setup(shards=2)
        simulation, _ = deployment.simulation(params)
        deployment.send(with_malformed(simulation.records(), every=300))
        return deployment

    yield make


@pytest.fixture(scope="module")
def clean_box() -> dict[str, Outcome]:
    return {}


@pytest.fixture
def clean(
    clean_box: dict[str, Outcome],
    make_deployment: Callable[[], Deployment],
    monkeypatch: pytest.MonkeyPatch,
) -> Outcome:
    if "clean" not in clean_box:
        clean_box["clean"] = run_worker(make_deployment(), lambda _c: None, monkeypatch)
    outcome = clean_box["clean"]
    assert not outcome.safety_stopped and outcome.unhealthy == []
    assert outcome.items and outcome.timestream and outcome.dead_letters
    return outcome


def wrap_all(clients: Clients, kind: str) -> list[FaultyClient]:
    wrapped = []
    for name in ("kinesis", "dynamodb", "timestream"):
        faulty = FaultyClient(getattr(clients, name)).burst(kind, every=5, length=2)
        setattr(clients, name, faulty)
        wrapped.append(faulty)
    return wrapped


def assert_equal_to_clean(outcome: Outcome, clean: Outcome) -> None:
    assert not outcome.safety_stopped, "the worker did not reach idle on its own"
    assert outcome.unhealthy == []
    missing = [i for i in clean.items if i not in outcome.items]
    extra = [i for i in outcome.items if i not in clean.items]
    assert (missing, extra) == ([], [])
    assert outcome.items == clean.items
    assert outcome.timestream == clean.timestream
    assert outcome.dead_letters == clean.dead_letters


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_bursts_of_faults_on_every_call_change_nothing(
    kind: str,
    clean: Outcome,
    make_deployment: Callable[[], Deployment],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = make_deployment()
    wrapped: list[FaultyClient] = []
    outcome = run_worker(deployment, lambda c: wrapped.extend(wrap_all(c, kind)), monkeypatch)
    assert_equal_to_clean(outcome, clean)
    called = {op for w in wrapped for op in w.calls}
    # Every operation called often enough to reach a burst (every 5th call) was faulted.
    often = {op for w in wrapped for op, n in w.calls.items() if n >= 5}
    faulted = {op for w in wrapped for op, n in w.faulted.items() if n}
    assert often <= faulted, f"operations never faulted: {sorted(often - faulted)}"
    assert {"list_shards", "get_shard_iterator", "get_records", "scan", "update_item"} <= called
    assert {"batch_write_item", "put_item", "query", "write_records"} <= called


def test_a_store_failing_for_a_long_time_stalls_nothing_for_good(
    clean: Outcome,
    make_deployment: Callable[[], Deployment],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = make_deployment()
    box: list[FaultyClient] = []

    def wrap(clients: Clients) -> None:
        faulty = FaultyClient(clients.dynamodb).outage("batch_write_item", "5xx", OUTAGE_S)
        clients.dynamodb = faulty
        box.append(faulty)

    outcome = run_worker(deployment, wrap, monkeypatch)
    (faulty,) = box
    assert faulty.outage_over("batch_write_item")  # the worker outlived the outage
    assert faulty.faulted["batch_write_item"] > 10  # and kept trying, with backoff
    assert_equal_to_clean(outcome, clean)
