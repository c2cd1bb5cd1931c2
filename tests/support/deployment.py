"""One isolated luxflow deployment on the test session's moto server, driven like a user would:
the `luxflow` CLI in child processes, with LUXFLOW_* settings and unique resource names.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.clock import DAY_MS, HOUR_MS
from core.records import DeadLetter
from domain.registry import encode_registry
from emulators.moto import emulator_env
from sim.params import SimParams
from sim.simulation import Simulation
from sim.truth import GroundTruth
from sinks.attrvalues import from_item
from sinks.deadletter import read_dead_letters
from streams.kinesis.producer import Producer
from tests.support.timestream import latest_by_identity, stored_records

ROOT = Path(__file__).resolve().parents[2]


DAY_CLOSE_MARGIN_MS = 3 * HOUR_MS
"""How far ahead a day's close by wall clock must be for a module's runs to agree on it."""
DAY_GRACE_MS = 600_000
"""The default window grace: a day closes this long after its midnight."""


def recent_params(**overrides: Any) -> SimParams:
    """Simulation parameters for a period that ended an hour ago, on an hour boundary, or a
    day earlier when the data's last day would close while the tests run."""
    now_ms = time.time_ns() // 1_000_000
    hours = overrides.pop("hours", 2)
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    # An idle shard moves its event clock to the wall clock, so the data's last day closes
    # (its daily reports are written) at midnight plus the grace. A reference run before that
    # moment and a compared run after it would differ by the daily reports: close to that
    # moment, the data moves into the day before, which closed long ago in every run.
    day_start_ms = (end_ms - 1) - (end_ms - 1) % DAY_MS
    closes_ms = day_start_ms + DAY_MS + DAY_GRACE_MS
    if now_ms - DAY_GRACE_MS < closes_ms < now_ms + DAY_CLOSE_MARGIN_MS:
        end_ms = day_start_ms
    base: dict[str, Any] = {
        "sites": 3,
        "buildings_per_site": 1,
        "rooms_per_building": 2,
        "lamps_per_room": 4,
        "sensors_per_room": 1,
        "start_ms": end_ms - hours * HOUR_MS,
        "duration_ms": hours * HOUR_MS,
        "interval_ms": 60_000,
        "seed": 11,
        "fault_count": 4,
        "spike_count": 4,
    }
    base.update(overrides)
    return SimParams(**base)


class Deployment:
    """Stream, tables and Timestream database with unique names, plus ways to run luxflow."""

    def __init__(
        self,
        endpoint: str,
        aws: Callable[[str], Any],
        name: str,
        tmp: Path,
        kinesis_endpoint: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._aws = aws
        self.kinesis_endpoint = kinesis_endpoint
        self.name = name
        self.tmp = tmp
        self.registry = tmp / "registry.json"
        self.env = {
            **os.environ,
            **emulator_env(endpoint),
            "LUXFLOW_STREAM": f"{name}-stream",
            "LUXFLOW_APP_NAME": f"{name}-leases",
            "LUXFLOW_COMMAND_TABLE": f"{name}-model",
            "LUXFLOW_DEAD_LETTER_TABLE": f"{name}-dead",
            "LUXFLOW_STATE_TABLE": f"{name}-state",
            "LUXFLOW_TIMESTREAM_DATABASE": f"{name}-ts",
            "LUXFLOW_REGISTRY_REFRESH_MS": "1000",
            "LUXFLOW_CHECKPOINT_INTERVAL_MS": "1000",
            "LUXFLOW_IDLE_TIMEOUT_MS": "2000",
            # The tests send simulated hours that ended before the run: their input is over
            # once it is read (tests of the lag rule set "lag").
            "LUXFLOW_IDLE_CLOSE": "wall",
            "LUXFLOW_POLL_INTERVAL_MS": "200",
            "LUXFLOW_FAILOVER_MS": "3000",
            "LUXFLOW_SHARD_SYNC_INTERVAL_MS": "1000",
            "LUXFLOW_TIMESTREAM_COMMON_ATTRIBUTES": "false",
            "LUXFLOW_LOG_LEVEL": "WARNING",
            # Workers run side by side: no fixed health port (tests that need it set one).
            "LUXFLOW_HEALTH_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
        if kinesis_endpoint:
            self.env["LUXFLOW_KINESIS_ENDPOINT_URL"] = kinesis_endpoint

    def aws(self, service_name: str) -> Any:
        """A boto3 client of the deployment's emulators (Kinesis may be kinesalite)."""
        if service_name == "kinesis" and self.kinesis_endpoint:
            import boto3

            return boto3.client(
                "kinesis",
                endpoint_url=self.kinesis_endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._aws(service_name)

    # -- set up and feed -------------------------------------------------------------------

    def setup(self, shards: int = 4) -> None:
        self.luxflow("setup", "--shards", str(shards))

    def simulation(self, params: SimParams) -> tuple[Simulation, GroundTruth]:
        simulation = Simulation(params)
        self.registry.write_bytes(
            encode_registry(simulation.registry(), simulation.site_defaults().values())
        )
        self.luxflow("registry", "import", str(self.registry))
        return simulation, simulation.ground_truth()

    def send(self, records: Iterable[tuple[str, bytes]]) -> int:
        producer = Producer(self.aws("kinesis"), self.env["LUXFLOW_STREAM"])
        producer.send(records)
        return producer.counters.records

    # -- run -------------------------------------------------------------------------------

    def luxflow(
        self, *args: str, timeout_s: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `luxflow ARGS` as a user would; with `check`, a non-zero exit fails the test."""
        result = subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"luxflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        return result

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run_worker_until_idle(self, quiet_s: int = 5) -> int:
        """Run `luxflow worker` until every shard is quiet; returns the records it read."""
        result = self.luxflow("worker", "--stop-when-idle-s", str(quiet_s))
        match = re.search(r"luxflow worker: (\d+) records read", result.stderr)
        assert match is not None, result.stderr[-2000:]
        return int(match.group(1))

    def stop(self, worker: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
        worker.send_signal(sig)
        output, _ = worker.communicate(timeout=60)
        return output

    # -- read back -------------------------------------------------------------------------

    def items(self) -> list[dict[str, Any]]:
        """Every command-model item as plain values, sorted by key."""
        client = self.aws("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.env["LUXFLOW_COMMAND_TABLE"]}
        while True:
            page = client.scan(**kwargs)
            for raw in page["Items"]:
                items.append(from_item(raw))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda i: (i["pk"], i["sk"]))

    def dead_letters(self) -> list[DeadLetter]:
        return read_dead_letters(self.aws("dynamodb"), self.env["LUXFLOW_DEAD_LETTER_TABLE"])

    def leases(self) -> dict[str, dict[str, Any]]:
        client = self.aws("dynamodb")
        page = client.scan(TableName=self.env["LUXFLOW_APP_NAME"], ConsistentRead=True)
        return {item["leaseKey"]["S"]: from_item(item) for item in page["Items"]}

    def checkpointed_shards(self) -> int:
        return sum(
            1 for lease in self.leases().values() if str(lease.get("checkpoint", "")).isdigit()
        )

    def timestream_view(self) -> dict[Any, dict[str, Any]]:
        """Timestream's view of both tables: one record per identity, highest version."""
        database = self.env["LUXFLOW_TIMESTREAM_DATABASE"]
        view: dict[Any, dict[str, Any]] = {}
        for table in ("events", "usage"):
            view.update(latest_by_identity(table, stored_records(self.endpoint, database, table)))
        return view

    def timestream_points(self) -> list[dict[str, Any]]:
        """Every record moto holds for the deployment's two tables, as sent."""
        database = self.env["LUXFLOW_TIMESTREAM_DATABASE"]
        return [
            record
            for table in ("events", "usage")
            for record in stored_records(self.endpoint, database, table)
        ]
