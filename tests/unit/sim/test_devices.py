"""The simulated device fleet on a fake link and a clock the test drives: the failover name,
reconnects, the bounded buffer and the end-to-end ack (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from domain.telemetry import Reading, decode_reading
from sim.dr.devices import AckMode, FailoverName, Fleet, Health

A, B = "a", "b"
MINUTE = 60_000
HORIZON = 20 * MINUTE


T0 = 1_764_763_200_000  # an hour boundary: the fleet's times are offsets from it


def reading(ts_ms: int, asset: str = "lamp-1") -> Reading:
    return Reading(
        "site-1", "bldg-1", "room-1", asset, T0 + ts_ms, 10.0, 230.0, 0.05, 300, True, 100
    )


@dataclass
class FakeLink:
    """Regions as dictionaries: what each accepted, and what each processed (the acks)."""

    health: Health
    accepted: dict[str, list[int]] = field(default_factory=lambda: {A: [], B: []})
    processed: dict[str, int] = field(default_factory=dict)
    refusing: bool = False

    def reachable(self, region: str, now_ms: int) -> bool:
        return self.health.reachable(region, now_ms)

    def publish(self, region: str, records: list[tuple[str, bytes]]) -> None:
        for _, data in records:
            ts_ms = decode_reading(data, T0 + 10 * 3_600_000).ts_ms - T0
            self.accepted[region].append(ts_ms)
            if self.refusing:
                continue
            self.processed[region] = max(self.processed.get(region, 0), T0 + ts_ms)

    def acks(self, region: str, assets: set[str]) -> dict[str, int]:
        return dict.fromkeys(assets, self.processed[region]) if region in self.processed else {}


def fleet(minutes: int, mode: AckMode, *, bound: int = 120) -> tuple[Fleet, FakeLink, Health]:
    health = Health()
    link = FakeLink(health)
    name = FailoverName(A, B, health, interval_ms=10_000, failures=3, ttl_ms=60_000)
    records = [reading(m * MINUTE) for m in range(1, minutes + 1)]
    devices = Fleet(
        records,
        lambda _site: name,
        link,
        mode=mode,
        bound=bound,
        ack_poll_ms=MINUTE,
        archive_horizon_ms=HORIZON,
        ack_timeout_ms=10 * MINUTE,
        backoff_base_ms=1_000,
        backoff_cap_ms=30_000,
        seed=1,
    )
    return devices, link, health


def run(devices: Fleet, until_ms: int, step_ms: int = 5_000, start_ms: int = 0) -> None:
    for now_ms in range(start_ms, until_ms + 1, step_ms):
        devices.advance(T0 + now_ms)


def test_the_name_answers_the_secondary_after_n_failed_checks_plus_the_ttl() -> None:
    health = Health({A: 95_000})
    name = FailoverName(A, B, health, interval_ms=10_000, failures=3, ttl_ms=60_000)
    # Checks fail at 100, 110, 120 s: the record fails over at 120 s, devices see it at 180 s.
    assert name.failed_over_at_ms() == 120_000
    assert name.answer(179_999) == A
    assert name.answer(180_000) == B


def test_a_device_keeps_what_the_archive_has_not_yet_replicated_though_processed() -> None:
    devices, _, _ = fleet(60, AckMode.END_TO_END)
    run(devices, 60 * MINUTE)
    held = [h.ts_ms - T0 for h in devices.devices["lamp-1"].buffer]
    # Processed at once, but kept until accepted 20 minutes before the last contact.
    assert held[0] >= 60 * MINUTE - HORIZON - MINUTE and held[-1] == 60 * MINUTE
    assert devices.counters.overflowed == 0


def test_after_a_region_loss_the_device_resends_everything_not_acknowledged_to_the_survivor() -> (
    None
):
    devices, link, health = fleet(90, AckMode.END_TO_END)
    run(devices, 60 * MINUTE)
    health.lost_at_ms[A] = T0 + 60 * MINUTE + 1
    run(devices, 90 * MINUTE, start_ms=60 * MINUTE + 5_000)
    got = set(link.accepted[B])
    # Everything after the archive's horizon at the last contact reaches the survivor.
    assert set(range(41 * MINUTE, 91 * MINUTE, MINUTE)) <= got
    assert devices.counters.resent >= 19
    device = devices.devices["lamp-1"]
    # Reconnected after the flip (checks at 3610, 3620, 3630 s) + TTL 60 s + backoff.
    assert device.reconnected_at_ms
    assert 3_690_000 <= device.reconnected_at_ms[0] - T0 <= 3_725_000


def test_with_broker_acks_what_the_lost_region_accepted_is_never_resent() -> None:
    devices, link, health = fleet(90, AckMode.BROKER)
    run(devices, 60 * MINUTE)
    health.lost_at_ms[A] = T0 + 60 * MINUTE + 1
    run(devices, 90 * MINUTE, start_ms=60 * MINUTE + 5_000)
    assert devices.counters.resent == 0
    assert min(link.accepted[B]) > 60 * MINUTE


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=60))
def test_a_full_buffer_counts_every_reading_it_drops(bound: int, minutes: int) -> None:
    devices, link, health = fleet(minutes, AckMode.END_TO_END, bound=bound)
    health.lost_at_ms[A] = T0
    health.lost_at_ms[B] = T0  # nothing reachable: everything is buffered
    run(devices, minutes * MINUTE, step_ms=MINUTE)
    held = devices.held()
    assert held == min(bound, minutes)
    assert devices.counters.overflowed == minutes - held
    assert link.accepted == {A: [], B: []}


def test_a_reading_taken_but_not_processed_is_sent_again_after_the_ack_timeout() -> None:
    devices, link, _ = fleet(30, AckMode.END_TO_END)
    run(devices, 10 * MINUTE)
    link.refusing = True  # e.g. the survivor before its workers see the new homes
    run(devices, 30 * MINUTE, start_ms=10 * MINUTE + 5_000)
    # Minute 11 was taken and not processed: sent again at each ack timeout (10 minutes).
    assert link.accepted[A].count(11 * MINUTE) == 2
    assert devices.counters.retried > 0
    assert devices.held() == 20  # minutes 1-10 processed and replicated; 11-30 kept
