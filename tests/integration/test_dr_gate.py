"""The DR home gate under a DynamoDB that throttles the site homes' Query for longer than the
whole run: record processing never waits for it.

An in-process local worker (`lighting.worker`) on real boto3 clients talking HTTP to the moto
server; its DynamoDB client is wrapped in `tests.support.faulty.FaultyClient`. The worker
loads the homes and the registry at start (as every worker does, before reading a record);
from then on every Query of the homes is throttled for an hour, and the shards start reading
once a reload is overdue, so every record is decoded while it is. Two sites: one homed in the
worker's region, one homed elsewhere. The worker must read every record, judge each by the
homes loaded at start, write exactly what a clean single-site run writes, and no shard thread
may ever wait on the throttled Query: the failed reloads happen on the refresher thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lighting.clients import Clients
from lighting.regions import HOME_PK, SiteHome, store_homes
from lighting.settings import Settings
from lighting.worker import local_runner, worker_views
from sim.dr.harness import EVENT_TYPES, wait_until
from sim.params import SimParams
from sim.simulation import Simulation
from streams.kinesis.local_runner import LocalRunner
from tests.support.deployment import Deployment, recent_params
from tests.support.faulty import FaultyClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 3_600.0
"""The homes' Query throttled for this long once the worker started: longer than the run."""
SAFETY_STOP_S = 240.0
"""Not an assertion: a worker still running then is stopped, so the test fails on its
results instead of hanging the suite."""
ELSEWHERE = "eu-elsewhere-1"


@pytest.fixture(scope="module")
def params() -> SimParams:
    return recent_params(sites=2, hours=1, fault_count=2, spike_count=2)


def deploy(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    name: str,
    tmp_path: Path,
    params: SimParams,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Deployment, Settings, Simulation]:
    (tmp_path / name).mkdir()
    deployment = Deployment(moto_endpoint, aws, name, tmp_path / name)
    deployment.setup(shards=2)
    simulation, _ = deployment.simulation(params)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(var, deployment.env[var])
    return deployment, Settings.from_env(deployment.env), simulation


def run_until_idle(runner: LocalRunner) -> bool:
    """Run `runner` in a thread until it stops when idle; False if the safety stop was hit."""
    thread = threading.Thread(target=runner.run, name="worker", daemon=True)
    thread.start()
    thread.join(SAFETY_STOP_S)
    if thread.is_alive():
        runner.stop()
        thread.join()
        return False
    return True


def is_home_query(request: dict[str, Any]) -> bool:
    return request.get("ExpressionAttributeValues", {}).get(":pk") == {"S": HOME_PK}


def outputs(deployment: Deployment) -> list[dict[str, Any]]:
    return [i for i in deployment.items() if i.get("type") in EVENT_TYPES]


def test_a_home_scan_throttled_for_the_whole_run_stalls_no_shard(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    params: SimParams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference: a clean run of the home site's records only, no homes registered.
    clean, clean_settings, simulation = deploy(
        moto_endpoint, aws, unique_name("gate-ref"), tmp_path, params, monkeypatch
    )
    here, there = sorted({a.site_id for a in simulation.assets})
    records = list(simulation.records())
    clean.send(r for r in records if r[0] == here)
    clean_clients = Clients(clean_settings)
    with worker_views(clean_settings, clean_clients) as views:
        assert run_until_idle(
            local_runner(clean_settings, clean_clients, views, stop_when_idle_ms=4_000)
        )
    expected = outputs(clean)
    assert {i["site_id"] for i in expected} == {here}
    assert {i["type"] for i in expected} == set(EVENT_TYPES)

    deployment, settings, _ = deploy(
        moto_endpoint, aws, unique_name("gate"), tmp_path, params, monkeypatch
    )
    store_homes(
        aws("dynamodb"),
        settings.command_table,
        [SiteHome(here, settings.region), SiteHome(there, ELSEWHERE)],
    )
    sent = deployment.send(records)
    sent_there = sum(1 for r in records if r[0] == there)
    clients = Clients(settings)
    faulty = FaultyClient(clients.dynamodb)
    clients.dynamodb = faulty
    with worker_views(settings, clients) as views:
        # From here on, every Query of the homes is throttled. The shards start once a
        # reload is overdue, so every record is decoded while it is.
        faulty.outage("query", "throttle", OUTAGE_S, when=is_home_query)
        overdue_ms = 2 * settings.registry_refresh_ms
        wait_until(lambda: views.gate.homes.age_ms > overdue_ms, 60, "the homes' reload overdue")
        runner = local_runner(settings, clients, views, stop_when_idle_ms=4_000)
        stopped_on_its_own = run_until_idle(runner)
    # Closed: the refresher threads have stopped, the counts below are final.
    homes_failures = views.gate.homes.failures

    assert stopped_on_its_own, "the worker did not reach idle on its own"
    assert runner.unhealthy() == []
    # The whole run happened inside the outage, and the reloads kept being tried and failing...
    assert not faulty.outage_over("query")
    assert homes_failures >= 1 and faulty.faulted["query"] == homes_failures
    # ...on the refresher thread only: no shard ever waited on the homes' Query.
    assert faulty.faulted_threads["query"] == {"refresh site homes"}
    # Every record read, each judged by the homes loaded at start.
    assert sum(p.records for p in runner.progress.values()) == sent
    letters = deployment.dead_letters()
    assert len(letters) == sent_there
    assert {letter.reason for letter in letters} == {
        f"not home: site {there} is homed in {ELSEWHERE} (epoch 1)"
    }
    # And the home site's outputs are exactly the clean run's.
    assert outputs(deployment) == expected


# -- the takeover's lookups: served from memory, answered in the background ----------------------

LOOKUP_OUTAGE_S = 20.0
"""Every read of the command table throttled this long from the worker's first record on:
longer than it takes to read every record, far shorter than the hold bound (5 minutes)."""
BACKGROUND_THREADS = {"lookup stored episodes", "refresh site homes", "refresh asset registry"}


def test_takeover_lookups_throttled_hold_the_outputs_until_answered_and_stall_no_shard(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    params: SimParams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference: a clean run, no homes, so no takeover lookup at all.
    clean, clean_settings, simulation = deploy(
        moto_endpoint, aws, unique_name("lookup-ref"), tmp_path, params, monkeypatch
    )
    records = list(simulation.records())
    clean.send(records)
    clean_clients = Clients(clean_settings)
    with worker_views(clean_settings, clean_clients) as views:
        assert run_until_idle(
            local_runner(clean_settings, clean_clients, views, stop_when_idle_ms=4_000)
        )
    expected = outputs(clean)
    assert {"fault", "energy_spike"} <= {i["type"] for i in expected}

    # Both sites were taken over by this region (epoch 2): every fault and spike is looked up.
    deployment, settings, _ = deploy(
        moto_endpoint, aws, unique_name("lookup"), tmp_path, params, monkeypatch
    )
    sites = sorted({a.site_id for a in simulation.assets})
    store_homes(
        aws("dynamodb"),
        settings.command_table,
        [SiteHome(site, settings.region, 2, "us-lost-1", 1) for site in sites],
    )
    sent = deployment.send(records)
    clients = Clients(settings)
    faulty = FaultyClient(clients.dynamodb)
    clients.dynamodb = faulty
    throttled_pks: list[str] = []

    def command_table_read(request: dict[str, Any]) -> bool:
        if request.get("TableName") != settings.command_table:
            return False  # the lease and state tables: the runner's and the checkpoint's
        throttled_pks.append(request.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S"))
        return True

    with worker_views(settings, clients) as views:
        # Every DynamoDB call but the sinks' writes, on the command table: its reads.
        for operation in ("query", "get_item", "scan"):
            faulty.outage(operation, "throttle", LOOKUP_OUTAGE_S, when=command_table_read)
        runner = local_runner(settings, clients, views, stop_when_idle_ms=4_000)
        stopped_on_its_own = run_until_idle(runner)

    assert stopped_on_its_own, "the worker did not reach idle on its own"
    assert runner.unhealthy() == []
    assert faulty.outage_over("query")
    # The lookups met the throttle, on the lookup thread: no shard thread ever waited on it.
    assert any(pk.startswith(("BLDG#", "SPIKE#")) for pk in throttled_pks if pk)
    assert "lookup stored episodes" in faulty.faulted_threads["query"]
    assert faulty.faulted_threads["query"] <= BACKGROUND_THREADS
    # Meanwhile the outputs waiting for them held their shards' checkpoints back...
    assert sum(p.counters.failed_checkpoints for p in runner.progress.values()) >= 1
    assert sum(p.records for p in runner.progress.values()) == sent
    # ...and every one of them was written once answered: none dropped, none dead-lettered.
    assert deployment.dead_letters() == []
    assert outputs(deployment) == expected
