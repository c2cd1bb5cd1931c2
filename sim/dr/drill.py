"""The DR drill's budget: what a region loss costs in time (RTO) and data (RPO), each part
either measured on the emulators or modelled, with where the modelled value comes from.

The emulators run the data path (streams, workers, the command table's replicas, the
failover command, the fence, the survivor's adaptive grace) for real. What they cannot run
(Route 53 health checks, DNS caches, devices' MQTT reconnects, S3 replication, the wait for a
lost region's fence lease) is a modelled part here, its value taken from the CDK app's own
constants (a unit test keeps them equal) or from the AWS documentation, cited per part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The CDK app's values (infra/lib/device-domain.ts, infra/lib/archive.ts).
HEALTH_CHECK_INTERVAL_S: Final = 10
HEALTH_CHECK_FAILURES: Final = 3
DEVICE_DNS_TTL_S: Final = 60
ARCHIVE_BUFFER_S: Final = 300
REPLICATION_TIME_S: Final = 900


@dataclass(frozen=True)
class Part:
    """One component: `seconds`, `measured` on the emulators or modelled, and its source."""

    name: str
    seconds: float
    measured: bool
    source: str


def rto_parts(
    *,
    measured_failover_s: float,
    fence_ttl_s: float,
    fence_skew_s: float,
    registry_refresh_s: float,
    reconnect_cap_s: float = 30.0,
) -> list[Part]:
    """From the loss to the first correct item of a moved site in the survivor. The fence
    wait runs alongside detection (both start at the loss), so only what it adds counts."""
    detection = HEALTH_CHECK_INTERVAL_S * HEALTH_CHECK_FAILURES
    fence_extra = max(0.0, fence_ttl_s + fence_skew_s - detection)
    return [
        Part(
            "detection: Route 53 health check",
            detection,
            False,
            f"{HEALTH_CHECK_INTERVAL_S} s interval x {HEALTH_CHECK_FAILURES} failures "
            "(CDK; Route 53 developer guide, 'How Route 53 determines whether a health check "
            "is healthy')",
        ),
        Part(
            "decision: `luxflow dr failover`",
            0.0,
            False,
            "automated on the health alarm; a paged operator adds their response time",
        ),
        Part(
            "fence: the lost region's lease ends",
            fence_extra,
            False,
            f"lease {fence_ttl_s:.0f} s + clock skew {fence_skew_s:.0f} s, beyond detection "
            "(docs/dr.md, the region fence; 0 without a fence)",
        ),
        Part(
            "homes reach the survivor's workers",
            registry_refresh_s,
            False,
            "one LUXFLOW_REGISTRY_REFRESH_MS at its default",
        ),
        Part(
            "DNS: resolvers drop the old answer",
            DEVICE_DNS_TTL_S,
            False,
            "the failover record's TTL (CDK)",
        ),
        Part(
            "devices reconnect",
            reconnect_cap_s,
            False,
            "firmware backoff with a 30 s cap (an assumption: AWS IoT Device SDKs back off "
            "exponentially with a configurable cap; no device is simulated on this path)",
        ),
        Part(
            "survivor: command to first item",
            measured_failover_s,
            True,
            "emulators: the failover CLI, one registry refresh of the test's 1 s, the batch "
            "and its prompt flush",
        ),
        Part(
            "task start",
            0.0,
            False,
            "none on the path: active-active, the survivor's workers already run",
        ),
    ]


def rpo_parts(*, items_lost: int, items_recovered: int, resend_s: float) -> list[Part]:
    """What a region loss loses: command-model items not yet replicated (measured) and raw
    readings not yet in the replicated archive (modelled), with what recovers each."""
    tail = ARCHIVE_BUFFER_S + REPLICATION_TIME_S
    return [
        Part(
            f"items not replicated at the loss: {items_lost}, recovered {items_recovered}",
            0.0,
            True,
            "emulators: the MREC replicator's backlog at the cut; recovered by the resend",
        ),
        Part(
            "readings only in the lost stream",
            tail,
            False,
            f"Firehose buffer {ARCHIVE_BUFFER_S} s + S3 Replication Time Control "
            f"{REPLICATION_TIME_S} s (99.99 % of objects; S3 user guide, 'S3 RTC')",
        ),
        Part(
            "of which the devices resend",
            min(tail, resend_s),
            False,
            f"device buffer {resend_s:.0f} s (resend horizon); readings lost for good: "
            f"{max(0.0, tail - resend_s):.0f} s",
        ),
    ]


def render(title: str, parts: list[Part], *, total: bool = True) -> str:
    """A table: one line per part, then (`total`) their sum."""
    width = max(len(p.name) for p in parts)
    lines = [title]
    for part in parts:
        kind = "measured" if part.measured else "modelled"
        lines.append(f"  {part.name:<{width}}  {part.seconds:8.1f} s  {kind}  {part.source}")
    if total:
        lines.append(f"  {'total':<{width}}  {sum(p.seconds for p in parts):8.1f} s")
    return "\n".join(lines)


# The device drill (sim/dr/devices.py, sim/dr/scenario.py): its modelled device behaviour.
RECONNECT_BACKOFF_BASE_S: Final = 1
RECONNECT_BACKOFF_CAP_S: Final = 30
DEVICE_BUFFER_READINGS: Final = 120
"""Two hours at one reading a minute: the 20 minutes the archive needs to replicate, an hour
of disconnection, and room to spare."""
ACK_POLL_S: Final = 60
ACK_TIMEOUT_S: Final = 600
"""Longer than the pipeline takes to process a reading under load (seconds), so a retry is
rare; shorter than the archive horizon, so a refused reading is sent again while held."""


def device_rto_parts(
    *,
    detection_s: float,
    failover_s: float,
    first_input_s: float,
    first_input: str,
    measured_s: float,
    registry_refresh_s: float,
) -> list[Part]:
    """From the loss to the first correct item of a moved site in the survivor, when devices
    and the archive replica feed it: `*_s` are seconds after the loss on the drill's clock
    (the failover at `failover_s`, the first input that produced an item at
    `first_input_s`); `measured_s` is the survivor's time from that input to the item."""
    homes_s = failover_s + registry_refresh_s
    return [
        Part(
            "detection: Route 53 health check",
            detection_s,
            False,
            f"{HEALTH_CHECK_FAILURES} failed checks {HEALTH_CHECK_INTERVAL_S} s apart, from the "
            "first check after the loss (CDK; Route 53 developer guide, 'How Route 53 "
            "determines whether a health check is healthy')",
        ),
        Part(
            "fence: the lost region's lease ends",
            failover_s - detection_s,
            False,
            "lease 60 s + clock skew 5 s from the loss, beyond detection (the region fence)",
        ),
        Part(
            "homes reach the survivor's workers",
            registry_refresh_s,
            False,
            "one LUXFLOW_REGISTRY_REFRESH_MS at its default (the emulators use 1 s)",
        ),
        Part(
            f"first input: {first_input}",
            max(0.0, first_input_s - homes_s),
            False,
            f"simulated: the failover record's TTL {DEVICE_DNS_TTL_S} s (CDK) after the flip, "
            f"then reconnect backoff with full jitter, {RECONNECT_BACKOFF_BASE_S} s doubling "
            f"to a {RECONNECT_BACKOFF_CAP_S} s cap (set in firmware: the IoT Device SDKs' MQTT5 "
            "minReconnectDelayMs / maxReconnectDelayMs, full jitter; seeded)",
        ),
        Part(
            "survivor: input to first item",
            measured_s,
            True,
            "emulators: the survivor's stream, worker and command table",
        ),
        Part("task start", 0.0, False, "active-active: the survivor's workers already run"),
    ]


@dataclass(frozen=True)
class Count:
    """One line of the RPO: how many readings or items, and what says so."""

    name: str
    count: int
    source: str


def render_counts(title: str, counts: list[Count]) -> str:
    width = max(len(c.name) for c in counts)
    lines = [title]
    lines.extend(f"  {c.name:<{width}}  {c.count:6d}  {c.source}" for c in counts)
    return "\n".join(lines)
