"""The lighting app under the real KCL MultiLangDaemon while the stream is resharded: a split
then a merge with two daemons sharing the leases (one SIGKILLed during the split), and an
on-demand-style doubling of the shard count. Both end with exactly the command-model and
query-model items of a straight run on one shard, and every child shard's processor started
only after each of its parents had saved its final state and checkpointed SHARD_END.

Kinesis is kinesalite behind `emulators.kinesis_front` (HTTP/2 for the daemon, `ChildShards`
at the end of a closed shard, UpdateShardCount as doubling); DynamoDB and Timestream are the
session's moto server.

Parent-first evidence: a parent's final state (the snapshot its children start from) is saved
before it checkpoints SHARD_END, and the daemon starts a child only once the lease table shows
all its parents at SHARD_END. So every child processor's start (its own log line, clock of
the same machine) must come after each parent's `saved_at_ms` of that final snapshot. The
check is an ordering of two events, not a duration.

How the split-and-merge test was checked to fail (patched in a copy of the tree, run, thrown
away):
- the bridge's SHARD_END checkpoint removed (`DaemonBridge._shard_ended` returning at once):
  the daemon logs "Application didn't checkpoint at end of shard" on every retry of the
  parent's shutdown, no parent reaches SHARD_END, no child starts; the test fails waiting for
  the split parent's SHARD_END.
- parent-first broken (`ShardCheckpoint.commit_end` committing SHARD_END first and saving the
  final state 15 s later): the children start in between and take the parent's older state;
  the test fails on the items: all of the straight run's are there plus 56 more (e.g. a
  site's daily usage report), written by children that started from the parent's older state.

The daemons run with KCL 3's graceful lease hand-over off. With it on (the daemon's default),
one run of the doubling test wedged: the leader moved two child leases that still waited for
their parent, and neither worker ever started them in four minutes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from emulators.kinesis_front import KinesisFrontServer
from sim.params import SimParams
from streams.kcl import EMULATOR_JAVA_OPTIONS, Daemon, KclSettings, write_properties
from tests.integration.test_kcl_pipeline import owners, print_tails, wait_for_equal
from tests.integration.test_pipeline import wait_for
from tests.support.deployment import ROOT, Deployment, recent_params
from tests.support.reshard import (
    StagedSender,
    final_saves,
    lineage,
    open_shards,
    processor_starts,
)

pytestmark = [pytest.mark.integration, pytest.mark.kcl, pytest.mark.reshard]


class Reference(NamedTuple):
    params: SimParams
    items: list[dict[str, Any]]
    timestream: dict[Any, dict[str, Any]]


@pytest.fixture(scope="module")
def kinesis_front(
    kinesalite_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("front") / "front.log"
    with KinesisFrontServer(kinesalite_endpoint, log_path=log) as front:
        yield front.endpoint


@pytest.fixture(scope="module")
def reference(
    moto_endpoint: str,
    kinesalite_endpoint: str,
    aws: Callable[[str], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    """The items of a straight run on one shard (local runner): what every resharded run
    must store."""
    params = recent_params(sites=4, seed=41, hours=2)
    deployment = Deployment(
        moto_endpoint,
        aws,
        "kcl-reshard-ref",
        tmp_path_factory.mktemp("ref"),
        kinesis_endpoint=kinesalite_endpoint,
    )
    deployment.setup(shards=1)
    simulation, _ = deployment.simulation(params)
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()
    return Reference(params, deployment.items(), deployment.timestream_view())


def resharding_deployment(
    moto_endpoint: str, aws: Callable[[str], Any], front: str, name: str, tmp: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, name, tmp, kinesis_endpoint=front)
    deployment.env["LUXFLOW_FAILOVER_MS"] = "10000"
    # The simulated hours lie in the past: a shard quiet for the idle timeout closes its
    # windows by processing time. Lease moves, the parent poll and processor start-ups pause
    # a shard for seconds, hence 20 s.
    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "20000"
    # The processors' own start times, for the parent-first check.
    deployment.env["LUXFLOW_LOG_LEVEL"] = "INFO"
    deployment.env["LUXFLOW_LOG_FORMAT"] = "json"
    deployment.setup(shards=2)
    return deployment


def start_daemon(deployment: Deployment, worker_id: str, log: Path) -> Daemon:
    """The daemon with luxflow's shard processor, as `luxflow worker --runner kcl` starts it,
    with shorter KCL intervals than that command sets: the shard sync (the first worker waits
    one interval after creating the leases), the parent poll (a child's wait after its parents
    ended) and the lease assignment."""
    properties = write_properties(
        log.with_suffix(".properties"),
        KclSettings(
            stream_name=deployment.env["LUXFLOW_STREAM"],
            application_name=deployment.env["LUXFLOW_APP_NAME"],
            region="us-east-1",
            executable=[sys.executable, "-m", "app", "kcl-processor", "--lease-owner", worker_id],
            kinesis_endpoint=deployment.kinesis_endpoint,
            dynamodb_endpoint=deployment.endpoint,
            worker_id=worker_id,
            failover_time_ms=int(deployment.env["LUXFLOW_FAILOVER_MS"]),
            shutdown_grace_ms=20_000,
            idle_time_between_reads_ms=200,
            shard_sync_interval_ms=5_000,
            parent_shard_poll_interval_ms=1_000,
            lease_assignment_interval_ms=2_000,
            worker_metrics_report_interval_ms=1_000,
            # KCL 3.1.3's graceful hand-over once wedged a child lease that the leader moved
            # while it still waited for its parent: neither worker ever started it (see the
            # module docstring). Without it a moved lease is taken at once, as on a failover.
            extra={"isGracefulLeaseHandoffEnabled": "false"},
        ),
    )
    env = {**deployment.env, "LUXFLOW_WORKER_ID": worker_id, "AWS_REGION": "us-east-1"}
    daemon = Daemon(
        properties, ROOT / ".jars", java_options=EMULATOR_JAVA_OPTIONS, env=env, log_path=log
    )
    return daemon.start()


def leader(deployment: Deployment) -> str:
    item = deployment.aws("dynamodb").get_item(
        TableName=f"{deployment.env['LUXFLOW_APP_NAME']}-CoordinatorState",
        Key={"key": {"S": "Leader"}},
        ConsistentRead=True,
    )["Item"]
    owner: str = item["ownerName"]["S"]
    return owner


def checkpoint_of(deployment: Deployment, shard_id: str) -> str:
    return str(deployment.leases().get(shard_id, {}).get("checkpoint", ""))


def assert_parents_first(deployment: Deployment, logs: list[Path]) -> None:
    """Every shard with parents: its lease names the parents Kinesis reports, each parent is
    at SHARD_END with a final state, and each of the child's processors started after each
    parent's final state was saved."""
    leases = deployment.leases()
    starts = processor_starts(*logs)
    saved = final_saves(deployment)
    children = {shard: parents for shard, parents in lineage(deployment).items() if parents}
    assert children
    for child, parents in children.items():
        assert tuple(sorted(leases[child].get("parentShardId", ()))) == parents, child
        assert child in starts, f"no processor of {child} ever started"
        for parent in parents:
            assert leases[parent]["checkpoint"] == "SHARD_END", parent
            assert parent in saved, f"{parent} has no final state"
            assert min(starts[child]) >= saved[parent], (child, parent)


def test_a_split_and_a_merge_under_two_daemons_one_killed_lose_and_repeat_nothing(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    kinesis_front: str,
    reference: Reference,
    tmp_path: Path,
) -> None:
    deployment = resharding_deployment(
        moto_endpoint, aws, kinesis_front, "kcl-split-merge", tmp_path
    )
    kinesis, stream = deployment.aws("kinesis"), deployment.env["LUXFLOW_STREAM"]
    simulation, _ = deployment.simulation(reference.params)
    records = list(simulation.records())
    third = len(records) // 3
    sender = StagedSender(
        deployment, records, stops=[third, 2 * third], records_per_s=200, trickle_per_s=5
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons = {
        "worker-a": start_daemon(deployment, "worker-a", logs[0]),
        "worker-b": start_daemon(deployment, "worker-b", logs[1]),
    }
    try:
        wait_for(lambda: set(owners(deployment).values()) == set(daemons), 240)
        low, high = open_shards(deployment)
        wait_for(lambda: checkpoint_of(deployment, low["ShardId"]).isdigit(), 120)

        # The split, and the worker that is not the KCL 3 leader SIGKILLed right after it (its
        # JVM and shard processors with it): whatever it held, parent or not, moves to the
        # survivor after the failover time.
        start, end = (int(low["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=stream,
            ShardToSplit=low["ShardId"],
            NewStartingHashKey=str((start + end + 1) // 2),
        )
        victim_id = "worker-b" if leader(deployment) == "worker-a" else "worker-a"
        daemons[victim_id].kill()
        sender.release()
        wait_for(lambda: checkpoint_of(deployment, low["ShardId"]) == "SHARD_END", 240)

        # The merge: the upper child of the split with the old upper shard.
        _, upper_child, old_high = open_shards(deployment)
        assert old_high["ShardId"] == high["ShardId"]
        kinesis.merge_shards(
            StreamName=stream,
            ShardToMerge=upper_child["ShardId"],
            AdjacentShardToMerge=high["ShardId"],
        )
        sender.release()
        merged = (upper_child["ShardId"], high["ShardId"])
        wait_for(lambda: {checkpoint_of(deployment, s) for s in merged} == {"SHARD_END"}, 240)
        sender.join()
        assert sender.unsent_at_release[0] > 0, "the stream ended before the split"
        wait_for_equal(deployment.items, reference.items, "DynamoDB", 240)
        wait_for_equal(deployment.timestream_view, reference.timestream, "Timestream", 60)
    finally:
        for daemon in daemons.values():
            daemon.stop(timeout_s=60)
        print_tails(*logs)
    assert deployment.items() == reference.items
    assert deployment.dead_letters() == []
    assert sorted(lineage(deployment)) == [f"shardId-00000000000{i}" for i in range(5)]
    assert_parents_first(deployment, logs)


def test_doubling_the_shard_count_while_two_daemons_run_loses_and_repeats_nothing(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    kinesis_front: str,
    reference: Reference,
    tmp_path: Path,
) -> None:
    deployment = resharding_deployment(moto_endpoint, aws, kinesis_front, "kcl-double", tmp_path)
    kinesis, stream = deployment.aws("kinesis"), deployment.env["LUXFLOW_STREAM"]
    simulation, _ = deployment.simulation(reference.params)
    records = list(simulation.records())
    sender = StagedSender(
        deployment, records, stops=[len(records) // 2], records_per_s=200, trickle_per_s=5
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons = [
        start_daemon(deployment, "worker-a", logs[0]),
        start_daemon(deployment, "worker-b", logs[1]),
    ]
    try:
        wait_for(lambda: set(owners(deployment).values()) == {"worker-a", "worker-b"}, 240)
        parents = [s["ShardId"] for s in open_shards(deployment)]
        wait_for(lambda: all(checkpoint_of(deployment, s).isdigit() for s in parents), 120)
        kinesis.update_shard_count(
            StreamName=stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING"
        )
        assert len(open_shards(deployment)) == 4
        sender.release()
        wait_for(lambda: {checkpoint_of(deployment, s) for s in parents} == {"SHARD_END"}, 240)
        sender.join()
        assert sender.unsent_at_release[0] > 0, "the stream ended before the scale-up"
        wait_for_equal(deployment.items, reference.items, "DynamoDB", 240)
        wait_for_equal(deployment.timestream_view, reference.timestream, "Timestream", 60)
    finally:
        for daemon in daemons:
            daemon.stop(timeout_s=60)
        print_tails(*logs)
    assert deployment.items() == reference.items
    assert deployment.dead_letters() == []
    assert len(lineage(deployment)) == 6
    assert_parents_first(deployment, logs)
