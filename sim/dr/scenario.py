"""The region-loss drill's timeline: a simulated device fleet (`sim.dr.devices`) publishing
through the failover name to two emulated regions (`sim.dr.harness`), the lost region's
archive replicated to the survivor (`sim.dr.archive`), the command table's MREC replicator,
and the region lost at a chosen moment.

Time is simulated: the drill steps a clock over the readings' own times (`step_ms`), so the
modelled delays (health checks, DNS TTL, reconnect backoff, Firehose buffer, S3 replication)
take no wall time; after every step it waits until each live region's worker has read what
was sent, so a region processes its load as it comes, as under normal load. The data path
(streams, workers, tables, the failover, the survivor's grace, the replicas) runs for real.

At the loss: the region's health check starts failing, its archive replication stops (what is
not yet in the survivor's bucket is lost), its command-table replication stops (`lose`), its
worker stops. At `loss + max(detection, fence wait)` the survivor runs the failover
(`failover`, the `luxflow dr failover` command), then reads the lost region's tail from its
replica of the archive and puts the moved sites' records into its own stream, where its
shards take them with the takeover grace. Devices find the survivor through the name, resend
what was not acknowledged, and go on live.

Why the tail goes through the survivor's own shards rather than through the engines of an
archive replay (`streams.kinesis.archive_replay`): the windows open at the loss are rebuilt
from two sources, the archive (up to the replica's horizon) and the devices' resend (after
it). Two engines would each close their part of a window as a report with partial coverage,
and the coverage condition keeps only the larger: the sum would be lost. Through one shard a
site's readings, archive then resend, meet in one window (the rules take a reading at or
before the last one seen as a duplicate, so an overlap is harmless).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.clock import wall_clock_ms
from domain.telemetry import decode_reading
from lighting.archive_tail import Tail, tail_records
from sim.dr.archive import ArchiveModel
from sim.dr.devices import Fleet, Health
from sim.dr.harness import EVENT_TYPES, Region, Worker
from sim.dr.replicator import ORIGIN, TS, Replicator, unreplicated


def reading_key(data: bytes) -> tuple[str, int]:
    """(asset, reading time): a reading's identity. Decoded for its ids and time only, the
    drill's readings being from the last hours (bounded by now as any arrival)."""
    reading = decode_reading(data, wall_clock_ms())
    return reading.asset_id, reading.ts_ms


class RegionLink:
    """The devices' `Link` to the emulated regions: a publish puts records into the region's
    stream, an ack read is a consistent read of the assets' state items in its replica."""

    def __init__(self, regions: dict[str, Region], health: Health) -> None:
        self.regions = regions
        self.health = health
        self.sent: dict[str, int] = dict.fromkeys(regions, 0)
        self.sends: list[tuple[str, int, int, set[str]]] = []
        """(region, simulated ms, wall ms, sites) of every publish."""
        self.now_ms = 0

    def reachable(self, region: str, now_ms: int) -> bool:
        return self.health.reachable(region, now_ms)

    def publish(self, region: str, records: list[tuple[str, bytes]]) -> None:
        self.sends.append((region, self.now_ms, wall_clock_ms(), {site for site, _ in records}))
        self.sent[region] += self.regions[region].send(records)

    def acks(self, region: str, assets: set[str]) -> dict[str, int]:
        settings = self.regions[region].settings
        keys = [{"pk": {"S": f"ASSET#{a}"}, "sk": {"S": "STATE"}} for a in sorted(assets)]
        acks: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                settings.command_table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while request:
                response = self.regions[region].raw.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(settings.command_table, []):
                    acks[item["pk"]["S"].removeprefix("ASSET#")] = int(item["ts_ms"]["N"])
                request = response.get("UnprocessedKeys") or {}
        return acks


@dataclass
class Outcome:
    """What the drill observed, for its report and assertions."""

    loss_ms: int
    failover_ms: int
    failover_wall_ms: int
    replay_from_ms: int
    items_lost: list[tuple[str, str]]
    tail: Tail | None
    in_replica: set[tuple[str, int]]
    lost_stream: set[tuple[str, int]]
    """Readings of the moved sites the lost region took that its replica did not hold."""
    replayed: set[tuple[str, int]] = field(default_factory=set)
    first_item: dict[str, Any] | None = None
    """The first output of a moved site the survivor wrote after the failover, as first seen
    (asset states are rewritten: the final items do not tell which came first)."""


@dataclass
class Timeline:
    """One drill run; `run` drives it from `start_ms` to `end_ms`."""

    lost: Region
    survivor: Region
    workers: dict[str, Worker]
    link: RegionLink
    fleet: Fleet
    archive: ArchiveModel
    replicator: Replicator
    moved_sites: set[str]
    failover: Callable[[int | None], None]
    """Runs `luxflow dr failover`; with a reading time, also `--archive` from it."""
    step_ms: int
    detection_ms: int
    fence_wait_ms: int
    replay_horizon_ms: int
    replay_archive: bool = True

    def run(self, start_ms: int, loss_ms: int, end_ms: int) -> Outcome:
        outcome: Outcome | None = None
        failover_at_ms = loss_ms + max(self.detection_ms, self.fence_wait_ms)
        now_ms = start_ms
        while True:
            self.link.now_ms = now_ms
            if outcome is None and now_ms >= loss_ms:
                outcome = self._lose(start_ms, loss_ms)
            if outcome is not None and outcome.failover_wall_ms == 0 and now_ms >= failover_at_ms:
                outcome.failover_ms = now_ms
                self._fail_over(outcome)
            self.fleet.advance(now_ms)
            self.archive.advance(now_ms)
            self._wait_processed()
            if outcome is not None and outcome.failover_wall_ms and outcome.first_item is None:
                outcome.first_item = first_item(
                    self.survivor.items(),
                    self.moved_sites,
                    self.survivor.name,
                    outcome.failover_wall_ms,
                )
            if now_ms >= end_ms:
                break
            # The failover at its modelled time, and the last step at the end (every reading
            # is due by then), whatever the step grid.
            step_to_ms = min(now_ms + self.step_ms, end_ms)
            if now_ms < failover_at_ms < step_to_ms:
                step_to_ms = failover_at_ms
            now_ms = step_to_ms
        if outcome is None:
            raise ValueError("the loss must fall inside the run")
        return outcome

    def _live(self) -> list[str]:
        return [name for name in self.workers if self.link.health.reachable(name, self.link.now_ms)]

    def _wait_processed(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for name in self._live():
            worker = self.workers[name]
            while worker.records() < self.link.sent[name]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} read {worker.records()} of {self.link.sent[name]}")
                time.sleep(0.02)

    def _lose(self, start_ms: int, loss_ms: int) -> Outcome:
        lost = self.lost.name
        self.link.health.lost_at_ms[lost] = loss_ms
        self.archive.lose(loss_ms)
        self.replicator.lose(lost)
        self.workers[lost].stop()  # its last flush stays in the lost region
        items_lost = unreplicated(
            [i for i in self.lost.items() if i.get("type") in EVENT_TYPES], self.survivor.items()
        )
        in_replica = {reading_key(r.data) for r in self.archive.replicated_records()}
        moved = {d.asset_id for d in self.fleet.devices.values() if d.site_id in self.moved_sites}
        accepted = {k for k in self.fleet.counters.accepted.get(lost, set()) if k[0] in moved}
        return Outcome(
            loss_ms,
            0,
            0,
            max(start_ms, loss_ms - self.replay_horizon_ms),
            items_lost,
            None,
            in_replica,
            accepted - in_replica,
        )

    def _fail_over(self, outcome: Outcome) -> None:
        outcome.failover_wall_ms = wall_clock_ms()
        if not self.replay_archive:
            self.failover(None)
            # The survivor's workers see the new homes within one registry refresh.
            time.sleep(2 * self.survivor.settings.registry_refresh_ms / 1000)
            return
        # The command puts the tail into the survivor's stream; the drill reads the same tail
        # (read only) to account for what it recovered.
        self.failover(outcome.replay_from_ms)
        tail = tail_records(
            self.survivor.clients.s3,
            self.archive.replica_bucket,
            self.archive.prefix,
            self.moved_sites,
            outcome.replay_from_ms,
        )
        outcome.tail = tail
        outcome.replayed = {reading_key(data) for _, data in tail.records}
        self._wait_processed()


def first_item(
    items: Iterable[dict[str, Any]], sites: set[str], region: str, after_wall_ms: int
) -> dict[str, Any] | None:
    """The first output of one of `sites` written in `region` at or after `after_wall_ms`."""
    found = [
        i
        for i in items
        if i.get("type") in EVENT_TYPES
        and i.get(ORIGIN) == region
        and i.get("site_id") in sites
        and int(i.get(TS, 0)) >= after_wall_ms
    ]
    return min(found, key=lambda i: int(i[TS])) if found else None
