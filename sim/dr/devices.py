"""A simulated device fleet that behaves as a device does across a region loss, on a clock the
drill controls (simulated milliseconds; nothing here sleeps).

- **The name.** Every device publishes to one name (`FailoverName`, the Route 53 failover
  record of the IoT custom domain): it answers the primary region until the primary's health
  check has failed `failures` times in a row (checks every `interval_ms`), then the secondary.
  A device sees a change `ttl_ms` after it happened (its resolver's cache: the worst case of
  the record's TTL).
- **Connection.** A publish to a region that does not answer fails: the device is
  disconnected, keeps buffering, and tries again after an exponential backoff with full
  jitter (capped at `backoff_cap_ms`, seeded), each time resolving the name again.
- **The buffer and its ack.** A device keeps every reading until it is acknowledged end to
  end, at most `bound` readings (the oldest ones beyond it are dropped and counted in
  `overflowed`, never silently). A reading is acknowledged when both hold:

  1. the device's asset-state item (the command table's `ASSET#a/STATE`, its last processed
     reading time) in the replica of the region the device is connected to is at or after
     the reading: the pipeline processed it. MQTT QoS 1's PUBACK only says the broker took
     the message (before the IoT rule's Kinesis action, which can fail), and a QoS 1 session
     never resends what the broker acknowledged: a region lost after the PUBACK takes the
     reading with it. So the ack is read from the command model, not from the broker;
  2. it was accepted at least `archive_horizon_ms` before the device's last successful
     contact with that region: by then the region's raw-record archive (Firehose buffer +
     S3 Replication Time Control) has copied it to the other region's bucket, so a copy of it
     outside the region exists. The asset state alone would not do: it replicates within a
     second, but the windows the reading feeds are regional state, lost with the region, and
     a survivor rebuilds them only from raw readings.

  On every (re)connection the device resends everything it still holds: exactly the readings
  not acknowledged; and a reading taken by the connected region but not processed within
  `ack_timeout_ms` (refused, e.g. it reached the survivor before its workers saw the new
  homes, or lost after the broker took it) is sent again while no later reading of the device
  is processed. The ack is a high-water mark: a reading refused and followed by processed
  later ones counts as acknowledged (a region's shard takes a device's readings in order, so
  only a refusal can leave a hole; refusals are dead letters with the original bytes, for
  `luxflow dr failover --redrive`). Resending a reading a region already processed is
  harmless (outputs have deterministic keys; the rules ignore a reading at or before the last
  one they saw).
- `AckMode.BROKER` is the negative control: a reading leaves the buffer once a region accepted
  it (QoS 1 semantics), so only what was never accepted is resent.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from domain.telemetry import Reading, encode_reading


class AckMode(Enum):
    END_TO_END = "end to end: asset state processed and older than the archive's replication"
    BROKER = "broker acceptance (MQTT QoS 1 PUBACK)"


@dataclass
class Health:
    """When each region was lost (simulated ms); a region not in `lost_at_ms` is healthy."""

    lost_at_ms: dict[str, int] = field(default_factory=dict)

    def reachable(self, region: str, now_ms: int) -> bool:
        lost = self.lost_at_ms.get(region)
        return lost is None or now_ms < lost


@dataclass(frozen=True)
class FailoverName:
    """A Route 53 failover record: primary while its health check passes, then secondary.
    Checks run at every multiple of `interval_ms`; the record fails over at the
    `failures`-th consecutive failed check; devices see it `ttl_ms` later."""

    primary: str
    secondary: str
    health: Health
    interval_ms: int
    failures: int
    ttl_ms: int

    def failed_over_at_ms(self) -> int | None:
        """When the record started answering the secondary (None: it has not)."""
        lost = self.health.lost_at_ms.get(self.primary)
        return None if lost is None else self.fails_over_at_ms(lost)

    def fails_over_at_ms(self, lost_at_ms: int) -> int:
        """When the record answers the secondary if the primary is lost at `lost_at_ms`."""
        first_failed = -(-lost_at_ms // self.interval_ms) * self.interval_ms
        return first_failed + (self.failures - 1) * self.interval_ms

    def answer(self, now_ms: int) -> str:
        """The region a device resolving the name at `now_ms` is given."""
        flipped = self.failed_over_at_ms()
        if flipped is not None and now_ms >= flipped + self.ttl_ms:
            return self.secondary
        return self.primary


class Link(Protocol):
    """What the devices reach in a region: its broker and stream, and its command model.

    `publish` puts records into the region's stream (raising nothing: the caller checked
    `reachable`); `acks` is each asset's last processed reading time in the region's replica
    (its asset-state items), for the assets asked."""

    def reachable(self, region: str, now_ms: int) -> bool: ...

    def publish(self, region: str, records: list[tuple[str, bytes]]) -> None: ...

    def acks(self, region: str, assets: set[str]) -> dict[str, int]: ...


@dataclass
class Held:
    """A reading in a device's buffer: `accepted_at_ms` and `region` once a broker took it."""

    ts_ms: int
    record: tuple[str, bytes]
    accepted_at_ms: int | None = None
    region: str | None = None


@dataclass
class Counters:
    """The fleet's accounting, in readings."""

    published: int = 0
    resent: int = 0
    """Published again to another region after one had accepted it."""
    overflowed: int = 0
    """Dropped from a full buffer: lost by the device."""
    reconnects: int = 0
    retried: int = 0
    """Sent again to the same region after the ack timeout."""
    accepted: dict[str, set[tuple[str, int]]] = field(default_factory=dict)
    """(asset, ts) of every reading each region accepted."""
    resent_readings: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class Device:
    asset_id: str
    site_id: str
    name: FailoverName
    buffer: deque[Held] = field(default_factory=deque)
    connected_to: str | None = None
    next_attempt_ms: int = 0
    attempts: int = 0
    last_contact_ms: int = 0
    reconnected_at_ms: list[int] = field(default_factory=list)


class Fleet:
    """Every device of `readings` (the simulation's, in time order), driven by
    `advance(now_ms)`: readings whose time has come enter their device's buffer, devices
    connect or back off, publish what they hold and was not yet taken, and every
    `ack_poll_ms` read their acks and drop what is acknowledged (see the module docstring)."""

    def __init__(
        self,
        readings: Iterable[Reading],
        names: Callable[[str], FailoverName],
        link: Link,
        *,
        mode: AckMode,
        bound: int,
        ack_poll_ms: int,
        archive_horizon_ms: int,
        ack_timeout_ms: int,
        backoff_base_ms: int,
        backoff_cap_ms: int,
        seed: int,
    ) -> None:
        self._pending: deque[tuple[int, str, tuple[str, bytes]]] = deque()
        self.devices: dict[str, Device] = {}
        for reading in readings:
            record = (reading.site_id, encode_reading(reading))
            self._pending.append((reading.ts_ms, reading.asset_id, record))
            if reading.asset_id not in self.devices:
                site = reading.site_id
                self.devices[reading.asset_id] = Device(reading.asset_id, site, names(site))
        self._link = link
        self.mode = mode
        self.bound = bound
        self._ack_poll_ms = ack_poll_ms
        self._horizon_ms = archive_horizon_ms
        self._ack_timeout_ms = ack_timeout_ms
        self._backoff_base_ms = backoff_base_ms
        self._backoff_cap_ms = backoff_cap_ms
        self._random = random.Random(seed)
        self._next_poll_ms = 0
        self.counters = Counters()

    def held(self) -> int:
        return sum(len(d.buffer) for d in self.devices.values())

    def advance(self, now_ms: int) -> None:
        while self._pending and self._pending[0][0] <= now_ms:
            ts_ms, asset_id, record = self._pending.popleft()
            self._hold(self.devices[asset_id], Held(ts_ms, record))
        batches: dict[str, list[tuple[Device, Held]]] = {}
        for device in self.devices.values():
            region = self._connection(device, now_ms)
            if region is None:
                continue
            for held in device.buffer:
                if held.accepted_at_ms is None:
                    batches.setdefault(region, []).append((device, held))
        for region, batch in batches.items():
            self._link.publish(region, [held.record for _, held in batch])
            accepted = self.counters.accepted.setdefault(region, set())
            for device, held in batch:
                identity = (device.asset_id, held.ts_ms)
                if held.region is not None and held.region != region:
                    self.counters.resent += 1
                    self.counters.resent_readings.add(identity)
                held.accepted_at_ms, held.region = now_ms, region
                device.last_contact_ms = now_ms
                accepted.add(identity)
                self.counters.published += 1
            if self.mode is AckMode.BROKER:
                for device, _ in batch:
                    while device.buffer and device.buffer[0].accepted_at_ms is not None:
                        device.buffer.popleft()
        if now_ms >= self._next_poll_ms:
            self._next_poll_ms = now_ms + self._ack_poll_ms
            self._poll_acks(now_ms)

    def _hold(self, device: Device, held: Held) -> None:
        if len(device.buffer) >= self.bound:
            device.buffer.popleft()
            self.counters.overflowed += 1
        device.buffer.append(held)

    def _connection(self, device: Device, now_ms: int) -> str | None:
        """The region `device` publishes to now, connecting (and so resending) if it must;
        None while it is disconnected and backing off."""
        if device.connected_to is not None:
            if self._link.reachable(device.connected_to, now_ms):
                return device.connected_to
            device.connected_to = None  # the publish fails: the connection is gone
            device.attempts = 0
            device.next_attempt_ms = now_ms + self._backoff(device)
            return None
        if now_ms < device.next_attempt_ms:
            return None
        region = device.name.answer(now_ms)
        if not self._link.reachable(region, now_ms):
            device.attempts += 1
            device.next_attempt_ms = now_ms + self._backoff(device)
            return None
        if device.last_contact_ms:
            self.counters.reconnects += 1
            device.reconnected_at_ms.append(now_ms)
        device.connected_to, device.attempts = region, 0
        device.last_contact_ms = now_ms
        for held in device.buffer:  # everything still held is unacknowledged: resend it
            held.accepted_at_ms = None
        return region

    def _backoff(self, device: Device) -> int:
        """Exponential backoff with full jitter, as the AWS IoT Device SDKs reconnect."""
        ceiling = min(self._backoff_cap_ms, self._backoff_base_ms * 2**device.attempts)
        return self._random.randrange(ceiling + 1)

    def _poll_acks(self, now_ms: int) -> None:
        if self.mode is AckMode.BROKER:
            return
        by_region: dict[str, list[Device]] = {}
        for device in self.devices.values():
            region = device.connected_to
            if region is not None and device.buffer and self._link.reachable(region, now_ms):
                by_region.setdefault(region, []).append(device)
        for region, devices in by_region.items():
            acks = self._link.acks(region, {d.asset_id for d in devices})
            for device in devices:
                device.last_contact_ms = now_ms
                processed_ms = acks.get(device.asset_id)
                if processed_ms is None:
                    continue
                safe_ms = now_ms - self._horizon_ms
                for held in device.buffer:
                    # Taken but not processed for an ack timeout (refused, or dropped after
                    # the broker took it): send it again, as an application-level QoS.
                    if (
                        held.ts_ms > processed_ms
                        and held.accepted_at_ms is not None
                        and held.accepted_at_ms <= now_ms - self._ack_timeout_ms
                    ):
                        held.accepted_at_ms = None
                        self.counters.retried += 1
                while device.buffer:
                    held = device.buffer[0]
                    if held.accepted_at_ms is None or held.accepted_at_ms > safe_ms:
                        break
                    if held.ts_ms > processed_ms:
                        break
                    device.buffer.popleft()
