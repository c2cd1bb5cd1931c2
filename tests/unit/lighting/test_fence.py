"""The region fence (`lighting.fence`): a write is admitted only while it lands inside a lease
the quorum granted, and never after a failover revoked it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from core.clock import ManualClock
from core.retry import is_retryable
from lighting.fence import FenceLease, FenceRevokedError, RegionFence, revoke_when_ended

TTL, RENEW, MARGIN = 3_000, 500, 1_000


class MemoryQuorum:
    """`Quorum` in memory, with a switch that makes one region's calls fail (cut off)."""

    def __init__(self) -> None:
        self.leases: dict[str, FenceLease] = {}
        self.cut: set[str] = set()

    def renew(self, region: str, until_ms: int) -> None:
        if region in self.cut:
            raise ConnectionError("quorum unreachable")
        lease = self.leases.get(region)
        if lease is not None and lease.revoked_at_ms is not None:
            raise FenceRevokedError(f"region {region} is fenced")
        self.leases[region] = FenceLease(region, until_ms)

    def read(self, region: str) -> FenceLease | None:
        return self.leases.get(region)

    def revoke(self, region: str, now_ms: int, ended_before_ms: int) -> bool:
        lease = self.leases.get(region, FenceLease(region, 0))
        if lease.until_ms >= ended_before_ms:
            return False
        self.leases[region] = FenceLease(region, lease.until_ms, revoked_at_ms=now_ms)
        return True

    def release(self, region: str) -> None:
        lease = self.leases.get(region, FenceLease(region, 0))
        self.leases[region] = FenceLease(region, lease.until_ms)


def fence(quorum: MemoryQuorum, clock: ManualClock) -> RegionFence:
    return RegionFence(quorum, "a", ttl_ms=TTL, renew_ms=RENEW, margin_ms=MARGIN, now_ms=clock)


def test_a_write_is_admitted_only_while_the_lease_has_more_than_the_margin_left() -> None:
    clock, quorum = ManualClock(10_000), MemoryQuorum()
    f = fence(quorum, clock)
    assert not f.holds()  # no renewal yet: nothing proven
    assert f.renew()
    f.check("PutItem")
    clock.advance(TTL - MARGIN - 1)
    f.check("PutItem")
    clock.advance(1)
    with pytest.raises(ClientError) as raised:
        f.check("PutItem")
    # A lapsed (not revoked) lease looks like an unavailable service: retried, never lost.
    assert raised.value.response["Error"]["Code"] == "RegionFenced"
    assert is_retryable(raised.value)


def test_a_failed_renewal_keeps_the_old_end_and_a_later_one_resumes() -> None:
    clock, quorum = ManualClock(0), MemoryQuorum()
    f = fence(quorum, clock)
    f.renew()
    quorum.cut.add("a")
    clock.advance(RENEW)
    assert not f.renew()
    assert f.until_ms == TTL
    clock.advance(TTL)
    assert not f.holds()
    quorum.cut.clear()
    assert f.renew()
    assert f.holds()


def test_revocation_waits_for_the_lease_to_end_and_then_fences_for_good() -> None:
    clock, quorum = ManualClock(0), MemoryQuorum()
    f = fence(quorum, clock)
    f.renew()
    quorum.cut.add("a")  # cut off, still running: its last lease ends at TTL
    waits: list[int] = []

    def sleep(seconds: float) -> None:
        clock.advance(int(seconds * 1000))

    waited = revoke_when_ended(
        quorum, "a", clock_skew_ms=200, now_ms=clock, sleep_s=sleep, waiting=waits.append
    )
    assert waits and waited >= TTL + 200
    assert clock.now_ms > TTL + 200
    quorum.cut.clear()  # reconnects: the renewal meets the revocation
    assert not f.renew()
    assert f.revoked
    with pytest.raises(FenceRevokedError):
        f.check("BatchWriteItem")
    quorum.release("a")
    assert not f.renew()  # this process stays fenced; a restarted worker renews again
    assert fence(quorum, clock).renew()


def test_the_settings_must_leave_room_to_renew() -> None:
    with pytest.raises(ValueError, match="lapses between renewals"):
        RegionFence(MemoryQuorum(), "a", ttl_ms=1_000, renew_ms=600, margin_ms=500)


steps = st.lists(
    st.tuples(
        st.sampled_from(["renew", "cut", "heal", "write", "revoke"]),
        st.integers(min_value=0, max_value=2 * TTL),
    ),
    max_size=60,
)


@given(steps)
def test_no_admitted_write_lands_after_the_lease_the_survivor_sees_or_after_a_revocation(
    script: list[tuple[str, int]],
) -> None:
    """Any interleaving of renewals, cuts, heals, writes and failover attempts, with a write
    call taking up to the margin: every admitted write lands before the lease's end as the
    quorum holds it, and none is admitted once a revocation succeeded."""
    clock, quorum = ManualClock(1_000), MemoryQuorum()
    f = fence(quorum, clock)
    revoked_at: int | None = None
    for action, advance in script:
        clock.advance(advance)
        if action == "renew":
            f.renew()
        elif action == "cut":
            quorum.cut.add("a")
        elif action == "heal":
            quorum.cut.discard("a")
        elif action == "revoke" and revoked_at is None:
            if quorum.revoke("a", clock.now_ms, clock.now_ms):
                revoked_at = clock.now_ms
        elif action == "write":
            try:
                f.check("PutItem")
            except (ClientError, FenceRevokedError):
                continue
            lease = quorum.read("a")
            assert lease is not None
            assert clock.now_ms + MARGIN < lease.until_ms
            assert revoked_at is None
