"""The region fence on the emulators (marker `dr`): region A cut off from the quorum but still
running, its devices still publishing. A failover from the survivor revokes A's lease once it
ended; from then on no write of A lands in A's replica of the command table, while A keeps
reading its stream, and also after A reconnects. The negative control runs the same without a
fence and finds A's writes after the failover: the check can fail."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from core.clock import wall_clock_ms
from lighting.fence import DynamoDBQuorum, FenceLease, revoke_when_ended
from lighting.regions import assign_homes, store_homes
from lighting.registry import store_registry
from sim.dr.harness import Region, region_settings, wait_until
from sim.dr.replicator import ORIGIN, TS
from sim.simulation import Simulation
from tests.integration import test_dr
from tests.support.deployment import recent_params
from tests.support.tables import create_pk_sk_table

pytestmark = pytest.mark.dr

A, B = "us-east-1", "us-west-2"
QUORUM_TABLE = "fence-quorum"
servers = test_dr.servers  # the two regions' moto servers, a module fixture
FENCE = {
    "fence_ttl_ms": 3_000,
    "fence_renew_ms": 300,
    "fence_margin_ms": 1_000,
    "fence_clock_skew_ms": 200,
}


class CutOff:
    """A's way to the quorum (which lives with the survivor and the witness), with a switch."""

    def __init__(self, quorum: DynamoDBQuorum) -> None:
        self._quorum = quorum
        self.cut = False

    def _reach(self) -> None:
        if self.cut:
            raise EndpointConnectionError(endpoint_url="https://quorum.invalid")

    def renew(self, region: str, until_ms: int) -> None:
        self._reach()
        self._quorum.renew(region, until_ms)

    def read(self, region: str) -> FenceLease | None:
        self._reach()
        return self._quorum.read(region)

    def revoke(self, region: str, now_ms: int, ended_before_ms: int) -> bool:
        self._reach()
        return self._quorum.revoke(region, now_ms, ended_before_ms)

    def release(self, region: str) -> None:
        self._reach()
        self._quorum.release(region)


def quorum_table(endpoint: str) -> Any:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=B)
    create_pk_sk_table(client, QUORUM_TABLE)
    return client


class Run:
    """What a cut-off region did: its command-table write times, when the failover revoked
    its lease, the records it had read when cut off and at the failover, whether it stopped
    by itself."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.revoked_ms = 0
        self.read_at_cut = 0
        self.read_at_failover = 0
        self.stopped_by_itself = False


def cut_off_region_after_failover(servers: dict[str, str], prefix: str, *, fenced: bool) -> Run:
    """Run A with a steady feed, cut it from the quorum, fail over from B, reconnect A."""
    simulation = Simulation(recent_params(lamps_per_room=3, seed=7, hours=1))
    sites = {a.site_id for a in simulation.assets}
    overrides: dict[str, Any] = {"idle_timeout_ms": 60_000, "idle_close": "lag"}
    if fenced:
        overrides.update(FENCE, fence_table=QUORUM_TABLE)
    a = Region(region_settings(A, servers[A], prefix, **overrides))
    store_registry(a.clients.dynamodb, a.settings.command_table, test_dr.registry_of(simulation))
    store_homes(a.clients.dynamodb, a.settings.command_table, assign_homes(sites, A))
    quorum = DynamoDBQuorum(quorum_table(servers[B]), QUORUM_TABLE)
    a_side = CutOff(quorum)
    records = list(simulation.records())
    chunks = [records[i::16] for i in range(16)]  # each chunk spans the hour: steady writes
    stop_feeding = threading.Event()

    def feed() -> None:
        for chunk in chunks:
            if stop_feeding.wait(0.5):
                return
            a.send(chunk)

    run = Run()
    worker = a.start_worker(quorum=a_side if fenced else None)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_until(lambda: writes(a), 60, "A's first command-table writes")
        a_side.cut = True  # cut off from the quorum, still running and still fed
        run.read_at_cut = worker.records()
        if fenced:
            revoke_when_ended(quorum, A, clock_skew_ms=FENCE["fence_clock_skew_ms"])
        else:
            # Without a fence the survivor can only wait as long as a fenced failover would.
            stop_feeding.wait((FENCE["fence_ttl_ms"] + FENCE["fence_clock_skew_ms"]) / 1000)
        run.revoked_ms = wall_clock_ms()
        run.read_at_failover = worker.records()
        a_side.cut = False  # A reconnects
        feeder.join(60)
        stop_feeding.wait(3)  # time for anything still buffered in A to try to land
        run.stopped_by_itself = not worker.thread.is_alive()
    finally:
        stop_feeding.set()
        worker.stop()
    run.written = writes(a)
    return run


def writes(region: Region) -> list[int]:
    """When each command-table item of `region`'s replica was written by that region."""
    return [
        int(item[TS])
        for item in region.items()
        if item.get(ORIGIN) == region.name and TS in item and item.get("type")
    ]


def test_a_cut_off_region_writes_nothing_after_the_failover_revoked_its_lease(
    servers: dict[str, str],
) -> None:
    run = cut_off_region_after_failover(servers, "fenced", fenced=True)
    assert run.written and min(run.written) < run.revoked_ms
    assert run.read_at_failover > run.read_at_cut, "A kept running while cut off"
    late = [ts for ts in run.written if ts >= run.revoked_ms]
    assert late == [], f"{len(late)} writes of the fenced region landed after the failover"
    assert run.stopped_by_itself, "a revoked region's worker stops"


def test_without_a_fence_the_cut_off_region_keeps_writing_negative_control(
    servers: dict[str, str],
) -> None:
    run = cut_off_region_after_failover(servers, "unfenced", fenced=False)
    assert run.read_at_failover > run.read_at_cut
    assert [ts for ts in run.written if ts >= run.revoked_ms], "the check must be able to fail"
    assert not run.stopped_by_itself
