"""The real KCL MultiLangDaemon (JVM, jars in .jars/) against moto on 127.0.0.1.

moto is served by hypercorn (`MotoServer(http2=True)`): boto3 speaks HTTP/1.1 to it and the
daemon's Kinesis client cleartext HTTP/2, to the same backends. The daemon runs this file as
its shard processor: `python tests/integration/test_kcl_daemon.py` serves one shard through
`streams.kcl.run_processor` with `EchoEngine`, which appends every record it is given to a
JSON-lines file and checkpoints after every batch.

A missing JVM or jar fails these tests (ConfigError), it never skips them.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # started by the daemon, not by pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import boto3
import pytest

from core.records import SHARD_END, Position, Record
from emulators.moto import MotoServer, emulator_env
from streams.kcl import EMULATOR_JAVA_OPTIONS, Daemon, KclSettings, run_processor, write_properties
from streams.processor import Checkpointer, Lineage, ShardHealth

ROOT = Path(__file__).resolve().parents[2]
JARS = ROOT / ".jars"
REGION = "us-east-1"
SHARDS = 4

pytestmark = [pytest.mark.integration, pytest.mark.kcl]


# -- the shard processor the daemon starts ---------------------------------------------------


class EchoEngine:
    """A `ShardProcessor` that writes what it is given to `$ECHO_OUT/<shard>.jsonl` and
    checkpoints after every batch."""

    def __init__(self, shard_id: str, checkpointer: Checkpointer, out_dir: Path) -> None:
        self.shard_id = shard_id
        self.health = ShardHealth(shard_id)
        self._checkpointer = checkpointer
        self._path = out_dir / f"{shard_id}.jsonl"
        self._pending: list[str] = []

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        self._event("start")

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        if not records:
            return
        for r in records:
            self._pending.append(
                json.dumps(
                    {
                        "event": "record",
                        "seq": str(r.sequence_number),
                        "sub": r.sub_sequence_number,
                        "pk": r.partition_key,
                        "data": r.data.decode(),
                        "pid": os.getpid(),
                    }
                )
            )
        position = records[-1].position
        self._flush()
        self._checkpointer.checkpoint(self.shard_id, position)
        self._event("checkpoint", seq=str(position.sequence_number))

    def shard_ended(self) -> None:
        self._flush()
        self._checkpointer.checkpoint(self.shard_id, SHARD_END)
        self._event("shard_ended")

    def lease_lost(self) -> None:
        self._pending.clear()
        self._event("lease_lost")

    def shutdown_requested(self) -> None:
        self._event("shutdown_requested")

    def _flush(self) -> None:
        with self._path.open("a") as f:
            f.writelines(line + "\n" for line in self._pending)
        self._pending.clear()

    def _event(self, event: str, **fields: str) -> None:
        with self._path.open("a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")


def echo_factory(shard_id: str, checkpointer: Checkpointer) -> EchoEngine:
    return EchoEngine(shard_id, checkpointer, Path(os.environ["ECHO_OUT"]))


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with MotoServer(http2=True, log_path=log) as server:
        yield server


def client(server: MotoServer, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Deployment:
    """One stream, one application (lease table) and any number of daemons."""

    def __init__(self, server: MotoServer, work_dir: Path) -> None:
        self.server = server
        self.work_dir = work_dir
        self.out_dir = work_dir / "echo"
        self.out_dir.mkdir()
        suffix = uuid.uuid4().hex[:8]
        self.stream = f"kcl-{suffix}"
        self.application = f"kcl-app-{suffix}"
        self.kinesis = client(server, "kinesis")
        self.dynamodb = client(server, "dynamodb")
        self.kinesis.create_stream(StreamName=self.stream, ShardCount=SHARDS)
        self.daemons: list[Daemon] = []
        self.ended: set[int] = set()  # pids of daemons a test stopped on purpose
        self.sent: set[str] = set()

    def put(self, count: int, prefix: str) -> None:
        for start in range(0, count, 250):
            batch = [f"{prefix}-{i}" for i in range(start, min(count, start + 250))]
            self.kinesis.put_records(
                StreamName=self.stream,
                Records=[{"Data": d.encode(), "PartitionKey": f"site-{d}"} for d in batch],
            )
            self.sent.update(batch)

    def daemon(self, worker_id: str) -> Daemon:
        properties = write_properties(
            self.work_dir / f"{worker_id}.properties",
            KclSettings(
                stream_name=self.stream,
                application_name=self.application,
                region=REGION,
                executable=[sys.executable, str(Path(__file__).resolve())],
                kinesis_endpoint=self.server.endpoint,
                dynamodb_endpoint=self.server.endpoint,
                worker_id=worker_id,
                failover_time_ms=6_000,
                shutdown_grace_ms=20_000,
                idle_time_between_reads_ms=200,
                shard_sync_interval_ms=5_000,
                parent_shard_poll_interval_ms=1_000,
                lease_assignment_interval_ms=2_000,
                worker_metrics_report_interval_ms=1_000,
            ),
        )
        env = dict(
            os.environ,
            **emulator_env(self.server.endpoint),
            AWS_REGION=REGION,
            ECHO_OUT=str(self.out_dir),
            PYTHONPATH=str(ROOT),
        )
        daemon = Daemon(
            properties,
            JARS,
            java_options=EMULATOR_JAVA_OPTIONS,
            env=env,
            log_path=self.work_dir / f"{worker_id}.log",
        )
        self.daemons.append(daemon.start())
        return daemon

    def events(self) -> list[dict[str, Any]]:
        events = []
        for path in sorted(self.out_dir.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                events.append({"shard": path.stem, **json.loads(line)})
        return events

    def received(self) -> set[str]:
        return {e["data"] for e in self.events() if e["event"] == "record"}

    def leases(self) -> dict[str, dict[str, Any]]:
        """The lease table's items by shard; empty until the daemon created the table."""
        try:
            items = self.dynamodb.scan(TableName=self.application, ConsistentRead=True)["Items"]
        except self.dynamodb.exceptions.ResourceNotFoundException:
            return {}
        return {item["leaseKey"]["S"]: item for item in items}

    def last_sequence_numbers(self) -> dict[str, int]:
        """The sequence number of the newest record in each shard, from Kinesis itself."""
        last: dict[str, int] = {}
        for shard in self.kinesis.list_shards(StreamName=self.stream)["Shards"]:
            iterator = self.kinesis.get_shard_iterator(
                StreamName=self.stream,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            while iterator:
                page = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                for record in page["Records"]:
                    last[shard["ShardId"]] = int(record["SequenceNumber"])
                if not page["Records"] or page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page["NextShardIterator"]
        return last

    def wait_until(self, what: str, ok: Callable[[], bool], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for daemon in self.daemons:
                code = daemon.poll()
                if code is not None and daemon.pid not in self.ended:
                    pytest.fail(f"daemon exited with {code} waiting for {what}\n{self.logs()}")
            if ok():
                return
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}\n{self.logs()}")

    def end(self, daemon: Daemon, *, kill: bool) -> None:
        """SIGKILL (a crash) or SIGTERM (a graceful stop) one daemon."""
        assert daemon.pid is not None
        self.ended.add(daemon.pid)
        if kill:
            daemon.kill()
        else:
            daemon.stop(timeout_s=60)

    def logs(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.work_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop_all(self) -> None:
        for daemon in self.daemons:
            if daemon.poll() is None:
                daemon.kill()


@pytest.fixture
def deployment(moto_h2: MotoServer, tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(moto_h2, tmp_path)
    try:
        yield deployment
    finally:
        deployment.stop_all()


# -- tests -----------------------------------------------------------------------------------


def checkpointed(leases: dict[str, dict[str, Any]], last: dict[str, int]) -> bool:
    return len(leases) == SHARDS and all(
        leases[shard]["checkpoint"]["S"] == str(seq) for shard, seq in last.items()
    )


def test_one_daemon_delivers_every_record_and_checkpoints_in_kcl_format(
    deployment: Deployment,
) -> None:
    deployment.put(400, "a")
    daemon = deployment.daemon("worker-a")
    deployment.wait_until("every record", lambda: deployment.received() == deployment.sent)
    last = deployment.last_sequence_numbers()
    assert len(last) == SHARDS
    deployment.wait_until(
        "checkpoints at the last records", lambda: checkpointed(deployment.leases(), last)
    )

    for shard, item in deployment.leases().items():
        types = {name: next(iter(value)) for name, value in item.items()}
        assert (
            types.items()
            >= {
                "leaseKey": "S",
                "checkpoint": "S",
                "checkpointSubSequenceNumber": "N",
                "leaseOwner": "S",
                "leaseCounter": "N",
                "ownerSwitchesSinceCheckpoint": "N",
                "startingHashKey": "S",
                "endingHashKey": "S",
            }.items()
        ), shard
        assert item["leaseOwner"]["S"] == "worker-a"
        assert item["checkpointSubSequenceNumber"]["N"] == "0"

    table = deployment.dynamodb.describe_table(TableName=deployment.application)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    tables = set(deployment.dynamodb.list_tables()["TableNames"])
    assert {
        f"{deployment.application}-CoordinatorState",
        f"{deployment.application}-WorkerMetricStats",
    } <= tables

    # SIGTERM: the JVM's shutdown hook sends shutdownRequested to every processor.
    deployment.end(daemon, kill=False)
    events = deployment.events()
    assert {e["shard"] for e in events if e["event"] == "shutdown_requested"} == set(last)


def test_leases_split_between_two_daemons_and_move_when_the_leader_is_killed(
    deployment: Deployment,
) -> None:
    deployment.put(200, "before")
    first = deployment.daemon("worker-a")
    second = deployment.daemon("worker-b")

    def owners() -> dict[str, str]:
        return {k: v.get("leaseOwner", {}).get("S", "") for k, v in deployment.leases().items()}

    deployment.wait_until(
        "both workers to hold leases",
        lambda: set(owners().values()) == {"worker-a", "worker-b"},
        timeout_s=180,
    )
    deployment.wait_until("the first records", lambda: deployment.received() == deployment.sent)

    # Kill the KCL 3 leader, the hard case: its leases move only once the survivor has taken
    # the leader lock (CoordinatorState item "Leader", a DynamoDB lock held for 120 s, not
    # configurable in 3.1.3) and reassigned the expired leases.
    leader = deployment.dynamodb.get_item(
        TableName=f"{deployment.application}-CoordinatorState",
        Key={"key": {"S": "Leader"}},
        ConsistentRead=True,
    )["Item"]["ownerName"]["S"]
    victim, survivor = (first, second) if leader == "worker-a" else (second, first)
    survivor_id = "worker-b" if leader == "worker-a" else "worker-a"
    deployment.end(victim, kill=True)
    deployment.put(200, "after")
    deployment.wait_until(
        f"{survivor_id} to own every lease",
        lambda: len(owners()) == SHARDS and set(owners().values()) == {survivor_id},
        timeout_s=300,
    )
    deployment.wait_until("every record", lambda: deployment.received() == deployment.sent)
    last = deployment.last_sequence_numbers()
    deployment.wait_until(
        "checkpoints at the last records", lambda: checkpointed(deployment.leases(), last)
    )
    assert survivor.poll() is None


if __name__ == "__main__":
    sys.exit(run_processor(echo_factory))
