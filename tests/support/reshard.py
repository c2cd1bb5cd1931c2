"""Helpers for resharding tests under the KCL daemon: a sender that keeps records flowing in
stages, the lineage Kinesis reports, and the evidence of parent-first processing (when each
shard processor started, when each parent saved its final state)."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.kinesis.producer import Producer
from tests.support.deployment import Deployment


class StagedSender:
    """Sends records in the background in stages: `records[:stops[0]]` at `records_per_s`,
    then one record at a time at `trickle_per_s` until `release()`, then on to the next stop,
    and so on. What the test does before a release happens while records flow however slow
    the machine is, and the stream never pauses long enough for a shard to count as idle."""

    def __init__(
        self,
        deployment: Deployment,
        records: Sequence[tuple[str, bytes]],
        stops: Sequence[int],
        records_per_s: float,
        trickle_per_s: float,
    ) -> None:
        self._kinesis = deployment.aws("kinesis")
        self._stream = deployment.env["LUXFLOW_STREAM"]
        self._records = records
        self._stops = list(stops)
        self._rate = records_per_s
        self._trickle = trickle_per_s
        self._releases = threading.Semaphore(0)
        self.unsent_at_release: list[int] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._send()
        except BaseException as exc:  # the test reads it in join()
            self.error = exc

    def _send(self) -> None:
        records, sent = self._records, 0
        for stop in self._stops:
            if stop > sent:
                Producer(self._kinesis, self._stream, records_per_s=self._rate).send(
                    records[sent:stop]
                )
                sent = stop
            trickle = Producer(self._kinesis, self._stream, records_per_s=self._trickle)
            while sent < len(records) and not self._releases.acquire(blocking=False):
                trickle.send(records[sent : sent + 1])
                sent += 1
            if sent == len(records):
                self._releases.acquire()
            self.unsent_at_release.append(len(records) - sent)
        Producer(self._kinesis, self._stream, records_per_s=self._rate).send(records[sent:])

    def release(self) -> None:
        self._releases.release()

    def join(self, timeout_s: float = 600) -> None:
        self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error


def lineage(deployment: Deployment) -> dict[str, tuple[str, ...]]:
    """Every shard of the stream and its parents, as Kinesis reports them."""
    shards = deployment.aws("kinesis").list_shards(StreamName=deployment.env["LUXFLOW_STREAM"])
    return {
        s["ShardId"]: tuple(
            sorted(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)
        )
        for s in shards["Shards"]
    }


def open_shards(deployment: Deployment) -> list[dict[str, Any]]:
    """The open shards, lowest hash key first."""
    shards = deployment.aws("kinesis").list_shards(StreamName=deployment.env["LUXFLOW_STREAM"])
    return sorted(
        (s for s in shards["Shards"] if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def processor_starts(*logs: Path) -> dict[str, list[int]]:
    """When each shard's processors started (ms since the epoch, from their own JSON log lines,
    copied into the daemons' logs): shard id -> start times, one per processor started."""
    starts: dict[str, list[int]] = {}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("message", "") if isinstance(entry, dict) else ""
            if entry.get("logger") == "streams.engine" and " starting after " in message:
                shard = message.split()[1].rstrip(":")
                starts.setdefault(shard, []).append(_epoch_ms(entry["time"]))
    return starts


def final_saves(deployment: Deployment) -> dict[str, int]:
    """Shard id -> when its final state (the one taken at SHARD_END, its children's base) was
    saved, for every shard whose stored state is final."""
    client = deployment.aws("dynamodb")
    kwargs: dict[str, Any] = {"TableName": deployment.env["LUXFLOW_STATE_TABLE"]}
    saved: dict[str, int] = {}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            if item.get("final", {}).get("BOOL"):
                saved[item["shard_id"]["S"]] = int(item["saved_at_ms"]["N"])
        if "LastEvaluatedKey" not in page:
            return saved
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _epoch_ms(stamp: str) -> int:
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(moment.replace(tzinfo=datetime.UTC).timestamp() * 1000)
