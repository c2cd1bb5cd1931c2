"""Savepoints over real HTTP (moto server): taken between two parts of a run, listed and shown by
the CLI, and replayed from with the state they recorded, as an operator does it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.clock import HOUR_MS
from domain.timestamps import format_ts
from sim.simulation import Simulation
from tests.support.deployment import Deployment, recent_params
from tests.support.timestream import latest_by_identity, stored_records

pytestmark = pytest.mark.integration

Key = tuple[str, str]


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, unique_name("sp"), tmp_path)
    # The input pauses between the two parts: there the idle clock must follow the observed
    # lag (not jump to the wall clock), or the second part would be late; `run_to_the_end`
    # closes the windows once the input is over.
    deployment.env["LUXFLOW_IDLE_CLOSE"] = "lag"
    deployment.setup(shards=2)
    return deployment


QUERY_TABLES = ("events", "usage")


def points_of(deployment: Deployment, table: str) -> list[dict[str, Any]]:
    """The Timestream records moto holds for one table, in the order they were written."""
    return stored_records(deployment.endpoint, deployment.env["LUXFLOW_TIMESTREAM_DATABASE"], table)


def by_key(items: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(item["pk"], item["sk"]): item for item in items}


def delete_items(deployment: Deployment, keys: set[Key]) -> None:
    client = deployment.aws("dynamodb")
    for pk, sk in keys:
        client.delete_item(
            TableName=deployment.env["LUXFLOW_COMMAND_TABLE"],
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
        )


def stream_ends(deployment: Deployment) -> dict[str, str]:
    """The last sequence number of every shard that holds records."""
    client = deployment.aws("kinesis")
    stream = deployment.env["LUXFLOW_STREAM"]
    ends: dict[str, str] = {}
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            if page["Records"]:
                ends[shard["ShardId"]] = page["Records"][-1]["SequenceNumber"]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return ends


def wait_until_checkpointed(deployment: Deployment) -> None:
    """Until the running worker has checkpointed every record the stream holds."""
    ends = stream_ends(deployment)
    deadline = time.monotonic() + 120
    while {
        k: str(v.get("checkpoint")) for k, v in deployment.leases().items() if k in ends
    } != ends:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def close_every_window(deployment: Deployment) -> None:
    """The input is over: a bounded run that reads nothing closes every window."""
    assert deployment.run_worker_until_idle() == 0


def split_at(simulation: Simulation, split_ms: int) -> tuple[list[tuple[str, bytes]], ...]:
    first, second = [], []
    for reading, record in zip(simulation.readings(), simulation.records(), strict=True):
        (first if reading.ts_ms < split_ms else second).append(record)
    return first, second


def run_live(deployment: Deployment, records: list[tuple[str, bytes]] | None = None) -> None:
    """A worker that does not stop on idle (an unbounded run, as in production) reads what
    the stream holds, plus `records` sent while it runs; stopped once all is checkpointed."""
    worker = deployment.start_worker()
    try:
        if records is not None:
            deployment.send(records)
        wait_until_checkpointed(deployment)
    finally:
        deployment.stop(worker)


def delete_state(deployment: Deployment) -> None:
    """What a replay without a savepoint does to the state (savepoints stay)."""
    client = deployment.aws("dynamodb")
    table = deployment.env["LUXFLOW_STATE_TABLE"]
    for item in client.scan(TableName=table, ConsistentRead=True)["Items"]:
        if not item["shard_id"]["S"].startswith("SAVEPOINT#"):
            client.delete_item(
                TableName=table, Key={"shard_id": item["shard_id"], "item": item["item"]}
            )


def test_replay_from_a_savepoint_taken_mid_run_rebuilds_everything_after_it_and_only_with_its_state(
    deployment: Deployment,
) -> None:
    params = recent_params(sites=2, hours=2, seed=5, fault_count=3, spike_count=3)
    simulation, _ = deployment.simulation(params)
    registry = set(by_key(deployment.items()))
    first, second = split_at(simulation, params.start_ms + HOUR_MS + HOUR_MS // 2)

    worker = deployment.start_worker()
    try:
        deployment.send(first)
        wait_until_checkpointed(deployment)
        # Taken while the worker runs: each shard's last completed save.
        savepoint_id = deployment.luxflow("savepoint", "create").stdout.strip()
        at_savepoint = by_key(deployment.items())
        deployment.send(second)
        wait_until_checkpointed(deployment)
    finally:
        deployment.stop(worker)
    close_every_window(deployment)
    straight = by_key(deployment.items())
    straight_points = deployment.timestream_view()
    points_before = {table: len(points_of(deployment, table)) for table in QUERY_TABLES}

    shown = json.loads(deployment.luxflow("savepoint", "show", savepoint_id, "--json").stdout)
    assert len(shown["shard_records"]) == 2
    assert all(s["state_blobs"] >= 1 for s in shown["shard_records"])
    listed = json.loads(deployment.luxflow("savepoint", "list", "--json").stdout)
    assert [row["id"] for row in listed] == [savepoint_id]

    after_savepoint = {k: v for k, v in straight.items() if at_savepoint.get(k) != v}
    # The hour that spans the savepoint is reported after it, from the state kept across it.
    assert any(
        v.get("type") == "usage_report" and v["window_start_ms"] == params.start_ms + HOUR_MS
        for v in after_savepoint.values()
    )

    # Forget what was written after the savepoint, then replay from it (picked by time).
    delete_items(deployment, set(after_savepoint) - registry)
    replay = deployment.luxflow("replay", "--at", format_ts(created_ms(savepoint_id) + 1), "--yes")
    assert f"restored savepoint {savepoint_id}" in replay.stdout
    run_live(deployment)
    close_every_window(deployment)
    replayed = by_key(deployment.items())
    assert {k: replayed.get(k) for k in after_savepoint} == after_savepoint
    assert replayed == straight
    # The query model too: every point the replay wrote is the straight run's point.
    rewritten = {
        key: record
        for table in QUERY_TABLES
        for key, record in latest_by_identity(
            table, points_of(deployment, table)[points_before[table] :]
        ).items()
    }
    assert rewritten, "the replay wrote no query-model point"
    assert {key: straight_points.get(key) for key in rewritten} == rewritten

    # The same positions without the recorded state do not rebuild it.
    delete_items(deployment, set(after_savepoint) - registry)
    deployment.luxflow("replay", "--savepoint", savepoint_id, "--yes")
    delete_state(deployment)
    run_live(deployment)
    close_every_window(deployment)
    without_state = by_key(deployment.items())
    assert {k: without_state.get(k) for k in after_savepoint} != after_savepoint


def created_ms(savepoint_id: str) -> int:
    match = re.fullmatch(r"sp-(\d+)-[0-9a-f]{8}", savepoint_id)
    assert match is not None
    return int(match.group(1))
