"""Emulated regions for the DR scenarios: each region is its own moto server on 127.0.0.1
(its own Kinesis stream, lease, state and dead-letter tables, and its replica of the command
table), with in-process local workers whose DynamoDB client stamps write timestamps
(`StampingDynamoDB`), and the MREC `Replicator` between the command-table replicas."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import boto3

from lighting.clients import Clients
from lighting.fence import Quorum
from lighting.provision import provision
from lighting.settings import Settings
from lighting.worker import run_local_worker
from sim.dr.replicator import ORIGIN, TS, Replica, StampingDynamoDB
from sinks.attrvalues import from_item
from sinks.deadletter import read_dead_letters
from streams.kinesis.local_runner import LocalRunner
from streams.kinesis.producer import Producer

EVENT_TYPES: Final = ("fault", "energy_spike", "usage_report", "asset_state")
"""The item types the pipeline writes (registry, homes and probes are not outputs)."""

FAST: Final = {
    "checkpoint_interval_ms": 1_000,
    "poll_interval_ms": 200,
    "registry_refresh_ms": 1_000,
    "failover_ms": 3_000,
    "shard_sync_interval_ms": 1_000,
    "timestream_common_attributes": False,
    "log_level": "WARNING",
    # Every reading rewrites its asset's state: the drill counts the items a lost region takes
    # with it, and a deadbanded fleet at steady power writes too few to show it.
    "state_refresh_ms": 1,
}


def region_settings(name: str, endpoint: str, prefix: str, **overrides: Any) -> Settings:
    """Settings of one emulated region. Names are the same in every region (a global table
    has one name; regional resources simply repeat), `prefix` keeps runs apart."""
    values: dict[str, Any] = {
        **FAST,
        "region": name,
        "endpoint_url": endpoint,
        "stream": f"{prefix}-stream",
        "app_name": f"{prefix}-leases",
        "command_table": f"{prefix}-model",
        "dead_letter_table": f"{prefix}-dead",
        "state_table": f"{prefix}-state",
        "timestream_database": f"{prefix}-ts",
        "worker_id": f"worker-{name}",
        **overrides,
    }
    return Settings(**values)


@dataclass
class Worker:
    """A local runner in a thread."""

    thread: threading.Thread
    box: list[LocalRunner] = field(default_factory=list)

    @property
    def runner(self) -> LocalRunner | None:
        return self.box[0] if self.box else None

    def records(self) -> int:
        runner = self.runner
        return sum(p.records for p in runner.progress.values()) if runner else 0

    def stop(self) -> None:
        """Graceful stop: flush, save state, checkpoint, release leases."""
        while self.runner is None and self.thread.is_alive():
            time.sleep(0.05)
        if self.runner is not None:
            self.runner.stop()
        self.thread.join()

    def join(self, timeout_s: float = 300.0) -> None:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise TimeoutError("worker did not stop")


class Region:
    """One emulated region: settings, clients (DynamoDB stamped on the global table), and a
    plain client for reading what is stored."""

    def __init__(self, settings: Settings, *, shards: int = 2) -> None:
        self.name = settings.region
        self.settings = settings
        self.raw = boto3.client(
            "dynamodb",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.clients = Clients(settings)
        provision(settings, self.clients, shards=shards)
        self.clients.dynamodb = StampingDynamoDB(
            self.clients.dynamodb, self.name, [settings.command_table]
        )

    @property
    def replica(self) -> Replica:
        return Replica(self.name, self.raw, self.settings.command_table)

    def send(self, records: Iterable[tuple[str, bytes]]) -> int:
        producer = Producer(self.clients.kinesis, self.settings.stream)
        producer.send(records)
        return producer.counters.records

    def start_worker(
        self,
        *,
        stop_when_idle_ms: int | None = None,
        quorum: Quorum | None = None,
        **overrides: Any,
    ) -> Worker:
        """A worker of this region in a thread (`quorum`: its region fence's, when the
        settings name a fence table)."""
        settings = dataclasses.replace(self.settings, **overrides)
        worker = Worker(threading.Thread(target=lambda: None))
        worker.thread = threading.Thread(
            target=run_local_worker,
            args=(settings, self.clients),
            kwargs={
                "stop_when_idle_ms": stop_when_idle_ms,
                "on_runner": worker.box.append,
                "quorum": quorum,
            },
            name=f"worker-{self.name}",
            daemon=True,
        )
        worker.thread.start()
        return worker

    def items(self) -> list[dict[str, Any]]:
        """Every item of this region's command-table replica, as plain values, by key."""
        items: list[dict[str, Any]] = []
        pages = self.raw.get_paginator("scan").paginate(
            TableName=self.settings.command_table, ConsistentRead=True
        )
        for page in pages:
            items.extend(from_item(raw) for raw in page["Items"])
        return sorted(items, key=lambda i: (i["pk"], i["sk"]))

    def refusals(self) -> list[str]:
        """Why this region refused records: their site is homed elsewhere."""
        letters = read_dead_letters(self.raw, self.settings.dead_letter_table)
        return [letter.reason for letter in letters if letter.reason.startswith("not home: ")]

    def refused(self) -> int:
        return len(self.refusals())

    def late(self) -> int:
        """Records this region's windows took as too late (dead letters `late`)."""
        letters = read_dead_letters(self.raw, self.settings.dead_letter_table)
        return sum(1 for letter in letters if letter.reason == "late")


def outputs(items: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The pipeline's outputs among `items`, by key, without the replication stamps."""
    return {
        (i["pk"], i["sk"]): {k: v for k, v in i.items() if k not in (TS, ORIGIN)}
        for i in items
        if i.get("type") in EVENT_TYPES
    }


@dataclass(frozen=True)
class Divergence:
    """How two command models differ: keys only in one, keys whose items differ."""

    only_left: list[tuple[str, str]]
    only_right: list[tuple[str, str]]
    different: list[tuple[str, str]]

    @property
    def converged(self) -> bool:
        return not (self.only_left or self.only_right or self.different)

    def __str__(self) -> str:
        return (
            f"{len(self.only_left)} only left, {len(self.only_right)} only right, "
            f"{len(self.different)} different (e.g. "
            f"{(self.only_left + self.only_right + self.different)[:3]})"
        )


def divergence(
    left: dict[tuple[str, str], dict[str, Any]], right: dict[tuple[str, str], dict[str, Any]]
) -> Divergence:
    """The convergence check: the same keys with the same items."""
    return Divergence(
        sorted(left.keys() - right.keys()),
        sorted(right.keys() - left.keys()),
        sorted(k for k in left.keys() & right.keys() if left[k] != right[k]),
    )


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def first_output_after(
    items: Iterable[dict[str, Any]], sites: set[str], region: str, after_ms: int
) -> int | None:
    """The write time of the first output for one of `sites` written in `region` after
    `after_ms`, or None."""
    stamps = [
        int(i[TS])
        for i in items
        if i.get("type") in EVENT_TYPES
        and i.get(ORIGIN) == region
        and i.get("site_id") in sites
        and int(i.get(TS, 0)) >= after_ms
    ]
    return min(stamps) if stamps else None
