"""Simulator -> Kinesis (4 shards) -> `luxflow worker` -> DynamoDB and Timestream, over real
HTTP to the moto server, with the worker run as a user runs it (the CLI, in a child process).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from sim.malformed import MALFORMED_SAMPLES, with_malformed
from sim.params import SimParams
from sim.simulation import Simulation
from sim.truth import GroundTruth
from streams.kinesis.reader import partition_hash
from tests.support.deployment import ROOT, Deployment, recent_params

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, unique_name("lx"), tmp_path)
    deployment.setup(shards=4)
    return deployment


def by_type(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in items if item.get("type") == kind]


def assert_matches_ground_truth(items: list[dict[str, Any]], truth: GroundTruth) -> None:
    """Every injected fault, spike and hourly asset usage exactly once. Besides them, every
    asset goes offline 15 minutes after its last reading (the data ends): those faults are
    checked too, and nothing else may be there."""
    last_ts = {(r.asset_id): r.ts_ms for r in Simulation(truth.params).readings()}
    offline = [f for f in by_type(items, "fault") if f["code"] == "offline"]
    assert sorted((f["asset_id"], f["opened_at_ms"], f["status"]) for f in offline) == sorted(
        (asset_id, ts_ms + 900_000, "open") for asset_id, ts_ms in last_ts.items()
    )
    faults = [f for f in by_type(items, "fault") if f["code"] != "offline"]
    assert sorted(
        (f["asset_id"], f["code"], f["opened_at_ms"], f["cleared_at_ms"], f["status"])
        for f in faults
    ) == sorted((f.asset_id, f.code, f.start_ms, f.end_ms, "cleared") for f in truth.faults)
    spikes = by_type(items, "energy_spike")
    assert sorted((s["asset_id"], s["started_at_ms"], s["ended_at_ms"]) for s in spikes) == sorted(
        (s.asset_id, s.start_ms, s.end_ms) for s in truth.spikes
    )
    usage = {
        (u["asset_id"], u["window_start_ms"]): u["kwh"]
        for u in by_type(items, "usage_report")
        if u["level"] == "asset" and u["window_ms"] == 3_600_000
    }
    expected = {(u.asset_id, u.window_start_ms): u.wh / 1000 for u in truth.usage}
    assert usage.keys() == expected.keys()
    off = {k: (usage[k], v) for k, v in expected.items() if abs(usage[k] - v) > 0.005 * v}
    assert off == {}


def assert_usage_rolls_up(usage: list[dict[str, Any]]) -> None:
    """Room, building and site reports are the sums of their assets' reports, hour by hour and
    day by day, and a day is the sum of its hours."""
    hour, day = 3_600_000, 86_400_000
    scope_ids = {"room": 3, "building": 2, "site": 1}
    fields = ("site_id", "building_id", "room_id")
    assets = [u for u in usage if u["level"] == "asset"]
    for window_ms in (hour, day):
        for level, depth in scope_ids.items():
            expected: dict[tuple[Any, ...], float] = defaultdict(float)
            for u in assets:
                if u["window_ms"] == window_ms:
                    key = (*(u[f] for f in fields[:depth]), u["window_start_ms"])
                    expected[key] += u["kwh"]
            got = {
                (*(u[f] for f in fields[:depth]), u["window_start_ms"]): u["kwh"]
                for u in usage
                if u["level"] == level and u["window_ms"] == window_ms
            }
            assert got.keys() == expected.keys(), (level, window_ms)
            assert all(abs(got[k] - v) <= 1e-9 * max(1.0, v) for k, v in expected.items())
    # A day is reported once it is over (plus the grace); today's hours have no day yet.
    closed_by_ms = time.time_ns() // 1_000_000 - 600_000
    daily: dict[tuple[str, int], float] = defaultdict(float)
    for u in assets:
        day_start = u["window_start_ms"] - u["window_start_ms"] % day
        if u["window_ms"] == hour and day_start + day <= closed_by_ms:
            daily[(u["asset_id"], day_start)] += u["kwh"]
    got_daily = {
        (u["asset_id"], u["window_start_ms"]): u["kwh"] for u in assets if u["window_ms"] == day
    }
    assert got_daily.keys() == daily.keys()
    assert all(abs(got_daily[k] - v) <= 1e-9 * max(1.0, v) for k, v in daily.items())


def test_every_injected_event_is_stored_once_and_bad_records_are_dead_lettered(
    deployment: Deployment,
) -> None:
    simulation, truth = deployment.simulation(recent_params())
    assert truth.faults and truth.spikes
    sent = deployment.send(with_malformed(simulation.records()))
    deployment.run_worker_until_idle()

    items = deployment.items()
    assert_matches_ground_truth(items, truth)
    states = by_type(items, "asset_state")
    assert len(states) == len(simulation.assets)
    assert_usage_rolls_up(by_type(items, "usage_report"))

    letters = deployment.dead_letters()
    assert sorted(letter.reason.split(":")[0] for letter in letters) == sorted(MALFORMED_SAMPLES)
    assert {letter.data for letter in letters} == set(MALFORMED_SAMPLES.values())
    assert all(letter.origin == "decode" for letter in letters)
    assert sent == sum(simulation.reading_count(a) for a in simulation.assets) + len(
        MALFORMED_SAMPLES
    )

    # The query model holds one point per identity the command model's events give: a
    # cleared fault was opened too (two times); a spike's open and closed versions are one
    # point (same identity, the closed one's version is higher); usage reports once.
    points = deployment.timestream_view()
    faults = by_type(items, "fault")
    spikes = by_type(items, "energy_spike")
    expected_points = (
        sum(2 if f["status"] == "cleared" else 1 for f in faults)
        + len(spikes)
        + len(by_type(items, "usage_report"))
    )
    assert len(points) == expected_points
    assert all(s["status"] == "closed" and s["revision"] == 2 for s in spikes)
    # Every version was sent once: a spike confirmed while open was sent open, then closed.
    sent_spikes = [p for p in deployment.timestream_points() if p["MeasureName"] == "energy_spike"]
    assert len(spikes) <= len(sent_spikes) <= 2 * len(spikes)


class Reference(NamedTuple):
    params: SimParams
    truth: GroundTruth
    items: list[dict[str, Any]]
    timestream: dict[Any, dict[str, Any]]


@pytest.fixture(scope="module")
def reference(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    """DynamoDB and Timestream after one uninterrupted run: what every disturbed run must equal."""
    params = recent_params(sites=8, seed=23, hours=2)
    reference = Deployment(moto_endpoint, aws, "lx-reference", tmp_path_factory.mktemp("ref"))
    reference.setup(shards=4)
    simulation, truth = reference.simulation(params)
    reference.send(simulation.records())
    reference.run_worker_until_idle()
    items = reference.items()
    assert_matches_ground_truth(items, truth)
    return Reference(params, truth, items, reference.timestream_view())


def send_in_background(
    deployment: Deployment, records: list[tuple[str, bytes]], records_per_s: float
) -> threading.Thread:
    from streams.kinesis.producer import Producer

    def send() -> None:
        Producer(
            deployment.aws("kinesis"), deployment.env["LUXFLOW_STREAM"], records_per_s=records_per_s
        ).send(records)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_worker_stopped_mid_stream_and_restarted_stores_exactly_the_uninterrupted_items(
    deployment: Deployment, reference: Reference
) -> None:
    simulation, _ = deployment.simulation(reference.params)
    sender = send_in_background(deployment, list(simulation.records()), records_per_s=2_500)
    worker = deployment.start_worker()
    wait_for(lambda: deployment.checkpointed_shards() >= 2)
    deployment.stop(worker, signal.SIGTERM)
    sender.join()
    deployment.run_worker_until_idle()
    assert deployment.items() == reference.items
    assert deployment.timestream_view() == reference.timestream
    assert deployment.dead_letters() == []


@pytest.mark.chaos
def test_sigkill_at_random_points_leaves_exactly_the_uninterrupted_contents(
    deployment: Deployment, reference: Reference
) -> None:
    rng = random.Random(20261128)
    simulation, _ = deployment.simulation(reference.params)
    sender = send_in_background(deployment, list(simulation.records()), records_per_s=2_000)
    kills = 0
    for _ in range(3):
        worker = deployment.start_worker()
        time.sleep(rng.uniform(1.5, 4.0))
        deployment.stop(worker, signal.SIGKILL)
        kills += 1
    sender.join()
    deployment.run_worker_until_idle()
    assert kills == 3
    assert deployment.items() == reference.items
    assert deployment.timestream_view() == reference.timestream
    assert deployment.dead_letters() == []


@pytest.mark.reshard
def test_a_split_and_a_merge_while_the_worker_runs_lose_and_repeat_nothing(
    moto_endpoint: str,
    kinesalite_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    reference: Reference,
) -> None:
    """On kinesalite: moto's Kinesis keeps routing records to a closed parent shard."""
    deployment = Deployment(
        moto_endpoint, aws, unique_name("lx"), tmp_path, kinesis_endpoint=kinesalite_endpoint
    )
    deployment.setup(shards=4)
    simulation, _ = deployment.simulation(reference.params)
    records = list(simulation.records())
    half = len(records) // 2
    kinesis = deployment.aws("kinesis")
    stream = deployment.env["LUXFLOW_STREAM"]
    deployment.send(records[:half])
    # The data is hours old: a shard idle for the idle timeout moves its event clock to now,
    # which reads as "every asset went quiet" (offline faults). The reshard below pauses the
    # stream for a few seconds, so this worker must not treat the pause as idleness.
    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "120000"
    worker = deployment.start_worker()
    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "2000"
    wait_for(lambda: deployment.checkpointed_shards() >= 1)

    shards = sorted(
        kinesis.list_shards(StreamName=stream)["Shards"],
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    sites = {partition_key for partition_key, _ in records}
    busiest = max(range(4), key=lambda i: sum(_owns(shards[i], site) for site in sites))
    assert sum(_owns(shards[busiest], site) for site in sites) >= 2, "no shard to split keys of"
    split = shards[busiest]
    merge = (shards[2], shards[3]) if busiest < 2 else (shards[0], shards[1])
    low, high = (int(split["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    middle = sorted(partition_hash(site) for site in sites if _owns(split, site))
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=split["ShardId"],
        NewStartingHashKey=str(middle[len(middle) // 2]),
    )
    assert low < middle[len(middle) // 2] <= high
    wait_for(lambda: _active(kinesis, stream))
    kinesis.merge_shards(
        StreamName=stream,
        ShardToMerge=merge[0]["ShardId"],
        AdjacentShardToMerge=merge[1]["ShardId"],
    )
    wait_for(lambda: _active(kinesis, stream))
    deployment.send(records[half:])
    deployment.stop(worker, signal.SIGTERM)
    deployment.run_worker_until_idle()

    items = deployment.items()
    assert_matches_ground_truth(items, reference.truth)
    assert items == reference.items
    assert deployment.timestream_view() == reference.timestream
    leases = deployment.leases()
    assert len(leases) == 4 + 2 + 1
    closed = [split["ShardId"], merge[0]["ShardId"], merge[1]["ShardId"]]
    assert all(leases[s]["checkpoint"] == "SHARD_END" for s in closed)


def _owns(shard: dict[str, Any], partition_key: str) -> bool:
    hash_range = shard["HashKeyRange"]
    low, high = int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"])
    return low <= partition_hash(partition_key) <= high


def _active(kinesis: Any, stream: str) -> bool:
    status: str = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamStatus"
    ]
    return status == "ACTIVE"


def test_a_silent_site_still_gets_its_last_hourly_report(deployment: Deployment) -> None:
    """One site, one hour, then silence: no later event time ever closes that hour, so its
    reports can only come from the idle close (processing time)."""
    simulation, truth = deployment.simulation(recent_params(sites=1, hours=1, fault_count=0))
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()
    usage = [
        u
        for u in by_type(deployment.items(), "usage_report")
        if u["level"] == "asset" and u["window_ms"] == 3_600_000
    ]
    assert len(usage) == len(truth.usage) == len(simulation.assets)
    assert {u["window_start_ms"] for u in usage} == {truth.params.start_ms}


def test_replay_reads_everything_again_and_changes_nothing(
    deployment: Deployment, reference: Reference
) -> None:
    simulation, _ = deployment.simulation(reference.params)
    total = deployment.send(simulation.records())
    assert deployment.run_worker_until_idle() == total
    before = deployment.items(), deployment.timestream_view()

    deployment.luxflow("replay", "--from", "trim-horizon", "--yes")
    assert {lease["checkpoint"] for lease in deployment.leases().values()} == {"TRIM_HORIZON"}
    assert deployment.run_worker_until_idle() == total

    assert (deployment.items(), deployment.timestream_view()) == before
    assert before[0] == reference.items


def test_replay_refuses_without_yes_and_while_a_worker_runs(deployment: Deployment) -> None:
    simulation, _ = deployment.simulation(recent_params(sites=1, hours=1))
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()
    refused = subprocess.run(
        [sys.executable, "-m", "app", "replay", "--from", "trim-horizon"],
        cwd=ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "run again with --yes" in refused.stderr

    worker = deployment.start_worker()
    wait_for(lambda: any("leaseOwner" in lease for lease in deployment.leases().values()))
    live = subprocess.run(
        [sys.executable, "-m", "app", "replay", "--from", "trim-horizon", "--yes"],
        cwd=ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    deployment.stop(worker)
    assert live.returncode == 2
    assert "workers are running" in live.stderr
