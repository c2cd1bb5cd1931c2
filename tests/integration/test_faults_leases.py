"""Leases under faults, on DynamoDB (moto server): a stalled former owner cannot checkpoint;
renewal outlives a slow sink; an engine whose lease was lost never calls its checkpointer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import LeaseLostError
from core.records import SHARD_END, LeaseFence, Position
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.worker import WorkerViews, local_runner, worker_views
from sim.malformed import with_malformed
from streams.kinesis.leases import Lease, LeaseCheckpointer, LeaseTable
from streams.kinesis.local_runner import LocalRunner, LocalRunnerConfig
from streams.processor import Checkpointer, EngineFactory, ShardProcessor
from tests.support.deployment import Deployment, recent_params
from tests.support.faulty import FaultyClient

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_a_stalled_former_owner_cannot_checkpoint(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    table = LeaseTable(aws("dynamodb"), unique_name("leases"))
    table.ensure_table()
    table.create_if_missing("shardId-0", (), (0, 2**128 - 1), "TRIM_HORIZON")
    a_client = FaultyClient(aws("dynamodb"))
    a = LeaseCheckpointer(LeaseTable(a_client, table.table_name))
    a.hold(table.take(table.list()["shardId-0"], "A"))
    a.checkpoint("shardId-0", Position(3))
    fence = a.fence("shardId-0")
    assert fence == LeaseFence(table.table_name, "shardId-0", "A", fence.counter)
    # A stalls; B takes the lease over and checkpoints further.
    b = LeaseCheckpointer(table)
    b.hold(table.take(table.list()["shardId-0"], "B"))
    b.checkpoint("shardId-0", Position(5))
    # A wakes up: its checkpoint is refused by the lease's condition, and it knows it.
    with pytest.raises(LeaseLostError):
        a.checkpoint("shardId-0", Position(4))
    calls = dict(a_client.calls)
    with pytest.raises(LeaseLostError):
        a.fence("shardId-0")
    with pytest.raises(LeaseLostError):
        a.checkpoint("shardId-0", Position(4))
    assert dict(a_client.calls) == calls  # no AWS call once the loss is known
    lease = table.list()["shardId-0"]
    assert (lease.owner, lease.checkpoint) == ("B", Position(5))


class Spy:
    """Wraps the engine factory: records, per engine, checkpoint calls and lease_lost."""

    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self.events: list[tuple[int, str]] = []
        self.count = 0

    def __call__(self, shard_id: str, checkpointer: Checkpointer) -> ShardProcessor:
        self.count += 1
        number = self.count
        events = self.events

        class SpyCheckpointer:
            def checkpoint(self, shard_id: str, position: Position | str) -> None:
                events.append((number, "checkpoint"))
                checkpointer.checkpoint(shard_id, position)

            def fence(self, shard_id: str) -> LeaseFence | None:
                return checkpointer.fence(shard_id)

        processor = self._factory(shard_id, SpyCheckpointer())
        lost = processor.lease_lost

        def lease_lost() -> None:
            events.append((number, "lease_lost"))
            lost()

        processor.lease_lost = lease_lost  # type: ignore[method-assign]
        return processor


@pytest.fixture
def opened() -> Iterator[list[WorkerViews]]:
    """The worker views of a test's runners, closed however the test ends."""
    views: list[WorkerViews] = []
    yield views
    for view in views:
        view.close()


def in_process_runner(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    opened: list[WorkerViews],
    worker_id: str,
    wrap: Callable[[Clients], None] = lambda _c: None,
) -> tuple[LocalRunner, Spy]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, deployment.env[name])
    settings = Settings.from_env({**deployment.env, "LUXFLOW_WORKER_ID": worker_id})
    clients = Clients(settings)
    wrap(clients)
    opened.append(worker_views(settings, clients))
    runner = local_runner(settings, clients, opened[-1], stop_when_idle_ms=4_000)
    spy = Spy(runner._engine_factory)
    runner._engine_factory = spy
    return runner, spy


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, unique_name("lz"), tmp_path)
    deployment.setup(shards=1)
    simulation, _ = deployment.simulation(recent_params(sites=1, hours=1))
    deployment.send(with_malformed(simulation.records(), every=300))
    return deployment


def test_renewal_outlives_a_sink_backing_off_longer_than_the_failover_time(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, opened: list[WorkerViews]
) -> None:
    """A's command-model writes are throttled for 8 s (the failover time is 3 s) while B
    watches the lease table, ready to take any lease whose counter stands still."""
    outage: list[FaultyClient] = []

    def throttle_sink(clients: Clients) -> None:
        faulty = FaultyClient(clients.dynamodb).outage("batch_write_item", "throttle", 8.0)
        clients.dynamodb = faulty
        outage.append(faulty)

    b, _ = in_process_runner(deployment, monkeypatch, opened, "B")
    a, a_spy = in_process_runner(deployment, monkeypatch, opened, "A", throttle_sink)
    a_thread = threading.Thread(target=a.run, daemon=True)
    a_thread.start()
    while a_spy.count == 0:  # A holds the shard before B starts watching
        a_thread.join(0.05)
    b_thread = threading.Thread(target=b.run, daemon=True)
    b_thread.start()
    a_thread.join()  # until idle: everything read and written
    b.stop()
    b_thread.join()
    assert outage[0].faulted["batch_write_item"] > 0 and outage[0].outage_over("batch_write_item")
    # A kept the shard from start to end (B may take it once A released it at its stop).
    assert a_spy.count == 1 and (1, "lease_lost") not in a_spy.events
    assert (1, "checkpoint") in a_spy.events and a.unhealthy() == []
    assert deployment.checkpointed_shards() == 1


def test_an_engine_whose_lease_was_lost_never_calls_its_checkpointer(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    aws: Callable[[str], Any],
    opened: list[WorkerViews],
) -> None:
    """B steals A's lease while A is mid-shard (A's sink is slowed so it is); A's renewal
    thread finds out, the engine is dropped, and it never checkpoints again."""
    slowed: list[FaultyClient] = []

    def slow_sink(clients: Clients) -> None:
        faulty = FaultyClient(clients.dynamodb).outage("batch_write_item", "5xx", 6.0)
        clients.dynamodb = faulty
        slowed.append(faulty)

    a, spy = in_process_runner(deployment, monkeypatch, opened, "A", slow_sink)
    table = LeaseTable(aws("dynamodb"), deployment.env["LUXFLOW_APP_NAME"])
    stolen = threading.Event()

    def steal() -> None:
        while not stolen.is_set():
            leases = table.list()
            if not leases:  # the runner has not created its leases yet
                time.sleep(0.05)
                continue
            lease = next(iter(leases.values()))
            if lease.owner == "A":
                try:
                    table.take(lease, "B")
                except LeaseLostError:
                    continue  # A renewed in between: try again
                stolen.set()

    thief = threading.Thread(target=steal, daemon=True)
    thief.start()
    a.run()
    thief.join()
    first = [event for number, event in spy.events if number == 1]
    assert "lease_lost" in first
    assert "checkpoint" not in first[first.index("lease_lost") :]
    # The shard was taken back once B's counter stood still, and finished by a new engine.
    assert spy.count >= 2 and a.unhealthy() == []


class ListedBeforeTheEnd(LeaseTable):
    """A lease table whose listing is the one read before the shard's end was saved, as when
    the save runs on a helper thread after the runner read its listing; every other call
    reaches the real table."""

    def __init__(self, client: Any, table_name: str, listing: dict[str, Lease]) -> None:
        super().__init__(client, table_name)
        self._listing = listing
        self.listed = 0

    def list(self) -> dict[str, Lease]:
        self.listed += 1
        return dict(self._listing)


def test_a_shard_whose_end_was_saved_after_the_listing_is_not_started_again(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    """The runner takes a lease it saw unfinished, and the take comes back SHARD_END (the
    end's checkpoint, by this worker, is what the take's condition finds): nothing starts."""
    kinesis, dynamodb = aws("kinesis"), aws("dynamodb")
    stream = unique_name("ended")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    (shard,) = kinesis.list_shards(StreamName=stream)["Shards"]
    shard_id = shard["ShardId"]
    table = LeaseTable(dynamodb, unique_name("leases"))
    table.ensure_table()
    table.create_if_missing(shard_id, (), (0, 2**128 - 1), "TRIM_HORIZON")
    held = table.take(table.list()[shard_id], "w1")
    listing = table.list()
    table.checkpoint(held, SHARD_END)
    started: list[str] = []

    def factory(shard_id: str, checkpointer: Checkpointer) -> ShardProcessor:
        started.append(shard_id)
        raise AssertionError("an ended shard was started")

    leases = ListedBeforeTheEnd(dynamodb, table.table_name, listing)
    runner = LocalRunner(
        kinesis, stream, leases, factory, LocalRunnerConfig(worker_id="w1", retry_base_ms=10)
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while leases.listed < 5 and thread.is_alive():
        thread.join(0.05)
    runner.stop()
    thread.join()
    assert started == []
    assert table.list()[shard_id].finished
