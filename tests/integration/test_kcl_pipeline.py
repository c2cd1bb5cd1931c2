"""The lighting app under the real KCL MultiLangDaemon (`luxflow worker --runner kcl`), against
moto served over HTTP/1.1 and cleartext HTTP/2 on 127.0.0.1: two daemons share the leases, one
is killed, and the command and query models end exactly as after one uninterrupted run; and a
deployment moves from the local runner to the KCL runner and back on one lease table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulators.moto import MotoServer
from streams.kinesis.producer import Producer
from tests.integration.test_pipeline import wait_for
from tests.support.deployment import ROOT, Deployment, recent_params

pytestmark = [pytest.mark.integration, pytest.mark.kcl]

JARS = ROOT / ".jars"


@pytest.fixture(scope="module")
def moto_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(http2=True, log_path=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


def h2_clients(server: MotoServer) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


def deployment_on(server: MotoServer, name: str, tmp: Path) -> Deployment:
    deployment = Deployment(server.endpoint, h2_clients(server), name, tmp)
    deployment.env["LUXFLOW_FAILOVER_MS"] = "10000"
    deployment.setup(shards=4)
    return deployment


def start_daemon(deployment: Deployment, worker_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**deployment.env, "LUXFLOW_WORKER_ID": worker_id}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "worker",
            "--runner",
            "kcl",
            "--jars",
            str(JARS),
            "--lease-assignment-interval-ms",
            "2000",
            "--worker-metrics-interval-ms",
            "1000",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the JVM and processors die with it
    )


def owners(deployment: Deployment) -> dict[str, str]:
    return {
        shard: lease["leaseOwner"]
        for shard, lease in deployment.leases().items()
        if "leaseOwner" in lease
    }


def wait_for_equal(
    read: Callable[[], list[Any] | dict[Any, Any]],
    expected: list[Any] | dict[Any, Any],
    what: str,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := read()) != expected:
        if time.monotonic() >= deadline:
            missing = [x for x in expected if x not in got]
            extra = [x for x in got if x not in expected]
            raise AssertionError(
                f"{what} never reached the reference: {len(missing)} missing, e.g. "
                f"{missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]}"
            )
        time.sleep(2)


def last_sequence_numbers(deployment: Deployment) -> dict[str, int]:
    """The sequence number of the newest record of every shard, read from the stream."""
    kinesis = deployment.aws("kinesis")
    stream = deployment.env["LUXFLOW_STREAM"]
    tips: dict[str, int] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            for record in page["Records"]:
                tips[shard["ShardId"]] = int(record["SequenceNumber"])
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
    return tips


def checkpoints(deployment: Deployment, shards: dict[str, int]) -> dict[str, int]:
    """The checkpointed sequence numbers of the given shards (sentinels left out)."""
    return {
        shard: int(lease["checkpoint"])
        for shard, lease in deployment.leases().items()
        if shard in shards and str(lease["checkpoint"]).isdigit()
    }


def print_tails(*logs: Path, lines: int = 40) -> None:
    """The end of each daemon's log: pytest shows it when the test fails."""
    for log in logs:
        print(f"--- {log.name}")
        print("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))


class MidStreamSender:
    """Sends records in the background and keeps a tail for after `release()`: the first half
    at `records_per_s`, then one record at a time at `trickle_per_s` until released, then the
    rest at full rate. Whatever the test does before releasing happens mid-stream however slow
    the machine is (a CI run once took longer to share the leases than the whole stream lasted),
    and the stream never pauses long enough for a shard to count as idle."""

    def __init__(
        self,
        deployment: Deployment,
        records: list[tuple[str, bytes]],
        records_per_s: float,
        trickle_per_s: float,
    ) -> None:
        self._kinesis = deployment.aws("kinesis")
        self._stream = deployment.env["LUXFLOW_STREAM"]
        self._records = records
        self._rate = records_per_s
        self._trickle = trickle_per_s
        self._released = threading.Event()
        self.unsent_at_release: int | None = None
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        records, head = self._records, len(self._records) // 2
        Producer(self._kinesis, self._stream, records_per_s=self._rate).send(records[:head])
        trickle = Producer(self._kinesis, self._stream, records_per_s=self._trickle)
        sent = head
        while sent < len(records) and not self._released.is_set():
            trickle.send(records[sent : sent + 1])
            sent += 1
        self.unsent_at_release = len(records) - sent
        Producer(self._kinesis, self._stream, records_per_s=self._rate).send(records[sent:])

    def release(self) -> None:
        self._released.set()

    def join(self) -> None:
        self._thread.join()


def stop(process: subprocess.Popen[bytes], sig: int) -> None:
    process.send_signal(sig)
    process.wait(timeout=90)


@pytest.fixture(scope="module")
def reference(moto_h2: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    params = recent_params(sites=4, seed=41, hours=2)
    deployment = deployment_on(moto_h2, "kcl-reference", tmp_path_factory.mktemp("ref"))
    simulation, _ = deployment.simulation(params)
    deployment.send(simulation.records())
    deployment.run_worker_until_idle()
    return params, deployment.items(), deployment.timestream_view()


def test_two_daemons_share_the_leases_and_a_sigkill_loses_and_repeats_nothing(
    moto_h2: MotoServer, reference: Any, tmp_path: Path
) -> None:
    params, items, timestream = reference
    deployment = deployment_on(moto_h2, "kcl-failover", tmp_path)
    simulation, _ = deployment.simulation(params)
    # The simulated hours lie in the past, so the stream must not pause longer than the idle
    # timeout: a quiet shard closes its windows by processing time (README, "State and
    # memory"). Lease moves and processor start-ups pause a shard for seconds, hence 20 s.
    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "20000"
    records = list(simulation.records())
    sender = MidStreamSender(deployment, records, records_per_s=50, trickle_per_s=5)
    first = start_daemon(deployment, "worker-a", tmp_path / "a.log")
    second = start_daemon(deployment, "worker-b", tmp_path / "b.log")
    try:
        wait_for(lambda: set(owners(deployment).values()) == {"worker-a", "worker-b"}, 180)
        # Kill the worker that is not the KCL 3 leader: the leader reassigns its leases after
        # the failover time (killing the leader is covered by test_kcl_daemon.py).
        leader = deployment.aws("dynamodb").get_item(
            TableName=f"{deployment.env['LUXFLOW_APP_NAME']}-CoordinatorState",
            Key={"key": {"S": "Leader"}},
            ConsistentRead=True,
        )["Item"]["ownerName"]["S"]
        victim, survivor_id = (second, "worker-a") if leader == "worker-a" else (first, "worker-b")
        # SIGKILL the whole worker (luxflow, its JVM, its shard processors), as when a task dies.
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        sender.release()
        wait_for(lambda: set(owners(deployment).values()) == {survivor_id}, 240)
        sender.join()
        assert sender.unsent_at_release, "the stream ended before the kill: not mid-stream"
        wait_for_equal(deployment.items, items, "DynamoDB", 240)
        wait_for_equal(deployment.timestream_view, timestream, "Timestream", 60)
    finally:
        for process in (first, second):
            if process.poll() is None:
                stop(process, signal.SIGTERM)
        print_tails(tmp_path / "a.log", tmp_path / "b.log")
    assert deployment.items() == items
    assert deployment.dead_letters() == []


def test_local_runner_and_kcl_runner_take_over_from_each_other(
    moto_h2: MotoServer, reference: Any, tmp_path: Path
) -> None:
    params, items, timestream = reference
    deployment = deployment_on(moto_h2, "kcl-handover", tmp_path)
    simulation, _ = deployment.simulation(params)
    records = list(simulation.records())
    third = len(records) // 3

    # The simulated hours lie in the past; the pauses between the runs must not count as a
    # quiet shard, or windows would close by processing time before their data arrived.
    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "3600000"
    deployment.send(records[:third])
    read_by_local = deployment.run_worker_until_idle()
    assert read_by_local == third
    tips_after_local = last_sequence_numbers(deployment)
    assert checkpoints(deployment, tips_after_local) == tips_after_local

    deployment.send(records[third : 2 * third])
    tips = last_sequence_numbers(deployment)
    daemon = start_daemon(deployment, "kcl-worker", tmp_path / "kcl.log")
    try:
        wait_for(lambda: checkpoints(deployment, tips) == tips, 240)
    finally:
        stop(daemon, signal.SIGTERM)

    deployment.env["LUXFLOW_IDLE_TIMEOUT_MS"] = "2000"
    deployment.send(records[2 * third :])
    # The KCL runner went on from the local runner's checkpoints (it reached the tips) and the
    # local runner from the KCL's: this run reads exactly the last third, nothing twice.
    assert deployment.run_worker_until_idle() == len(records) - 2 * third
    assert deployment.items() == items
    assert deployment.timestream_view() == timestream
