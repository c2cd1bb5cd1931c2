"""`luxflow replay --from TIME` in both runners, over real HTTP: only the records that arrived at
the stream at or after TIME are read again, by the local runner and by the KCL daemon.

The records that arrived before and after the replay time each carry one malformed sample with
its own bytes: the dead letters written after the replay say which part was read again.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.timestamps import format_ts
from emulators.moto import MotoServer
from sim.malformed import MALFORMED_SAMPLES
from tests.integration.test_kcl_pipeline import (
    checkpoints,
    deployment_on,
    last_sequence_numbers,
    moto_h2,
    start_daemon,
    stop,
)
from tests.support.deployment import Deployment, recent_params

pytestmark = pytest.mark.integration

__all__ = ["moto_h2"]  # the fixture, imported for this module's tests

BEFORE = MALFORMED_SAMPLES["not_json"]
AFTER = MALFORMED_SAMPLES["bad_type"]


def send_around_a_time(deployment: Deployment) -> tuple[int, int]:
    """Half the records, then (a second later) the replay time, then the other half. Returns
    the replay time (a whole second: both runners take it at that resolution) and the number
    of records sent after it."""
    simulation, _ = deployment.simulation(recent_params(sites=1, hours=1, fault_count=0))
    records = list(simulation.records())
    head = len(records) // 2
    deployment.send([*records[:head], ("site-x", BEFORE)])
    time.sleep(1.1)
    replay_ms = (time.time_ns() // 1_000_000 // 1000 + 1) * 1000
    time.sleep(replay_ms / 1000 - time.time() + 0.1)
    after = [*records[head:], ("site-x", AFTER)]
    deployment.send(after)
    return replay_ms, len(after)


def forget_dead_letters(deployment: Deployment) -> None:
    client = deployment.aws("dynamodb")
    table = deployment.env["LUXFLOW_DEAD_LETTER_TABLE"]
    key_names = [
        k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]
    ]
    for item in client.scan(TableName=table, ConsistentRead=True)["Items"]:
        client.delete_item(TableName=table, Key={name: item[name] for name in key_names})


def replay_from(deployment: Deployment, replay_ms: int) -> None:
    result = deployment.luxflow("replay", "--from", format_ts(replay_ms), "--yes")
    assert f"records arrived from {format_ts(replay_ms)}" in result.stdout
    leases = deployment.leases()
    assert {lease["checkpoint"] for lease in leases.values()} == {"AT_TIMESTAMP"}
    assert {lease["luxflowAtTimestampMs"] for lease in leases.values()} == {replay_ms}


def test_the_local_runner_reads_again_only_what_arrived_after_the_replay_time(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    deployment = Deployment(moto_endpoint, aws, unique_name("rt"), tmp_path)
    deployment.setup(shards=2)
    replay_ms, sent_after = send_around_a_time(deployment)
    deployment.run_worker_until_idle()
    assert {d.data for d in deployment.dead_letters()} == {BEFORE, AFTER}

    forget_dead_letters(deployment)
    replay_from(deployment, replay_ms)
    assert deployment.run_worker_until_idle() == sent_after
    assert [d.data for d in deployment.dead_letters()] == [AFTER]


@pytest.mark.kcl
def test_the_kcl_daemon_reads_again_only_what_arrived_after_the_replay_time(
    moto_h2: MotoServer, tmp_path: Path
) -> None:
    deployment = deployment_on(moto_h2, f"kcl-rt-{int(time.time())}", tmp_path)
    replay_ms, _ = send_around_a_time(deployment)
    deployment.run_worker_until_idle()
    assert {d.data for d in deployment.dead_letters()} == {BEFORE, AFTER}

    forget_dead_letters(deployment)
    replay_from(deployment, replay_ms)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(deployment, "kcl-rt", log)
    try:
        tips = last_sequence_numbers(deployment)
        deadline = time.monotonic() + 240
        # Done when every shard with records is checkpointed at its newest one.
        while checkpoints(deployment, tips) != tips:
            assert daemon.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(1)
    finally:
        stop(daemon, signal.SIGTERM)
    assert [d.data for d in deployment.dead_letters()] == [AFTER]


def test_a_replay_run_in_process_reports_progress_per_shard_and_changes_nothing(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    deployment = Deployment(moto_endpoint, aws, unique_name("rp"), tmp_path)
    deployment.setup(shards=2)
    simulation, _ = deployment.simulation(recent_params(sites=2, hours=1, fault_count=1))
    total = deployment.send(simulation.records())
    assert deployment.run_worker_until_idle() == total
    before = deployment.items()

    result = deployment.luxflow(
        "replay", "--from", "trim-horizon", "--yes", "--run", "--progress-s", "0.5"
    )
    assert "state deleted. Reading." in result.stdout
    assert re.search(rf"luxflow replay: {total} records read in [\d.]+ s", result.stderr)
    lines = re.findall(
        r"^(shardId-\d+): [\d,]+ records read, [\d,]+ records/s, \S+ behind the tip, "
        r"about \S+ left$",
        result.stderr,
        re.MULTILINE,
    )
    assert set(lines) == set(deployment.leases())
    assert deployment.items() == before
