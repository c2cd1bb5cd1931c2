"""`lighting.regions.TakeoverGrace`: the survivor's windows take the moved sites' resend."""

from __future__ import annotations

from core.clock import MINUTE_MS, ManualClock
from lighting.regions import HomeGate, SiteHome, TakeoverGrace

HORIZON, GRACE = 70 * MINUTE_MS, 2 * MINUTE_MS


def gate(homes: dict[str, SiteHome]) -> HomeGate:
    return HomeGate(lambda: dict(homes), "b", 60_000, ManualClock(0))


def test_no_move_no_boost() -> None:
    grace = TakeoverGrace(gate({"s1": SiteHome("s1", "b")}), HORIZON, GRACE)
    assert grace()[0] == 0


def test_a_site_moved_here_boosts_until_the_horizon_after_its_move() -> None:
    homes = {
        "s1": SiteHome("s1", "b", epoch=2, primary="a", moved_at_ms=1_000_000),
        "s2": SiteHome("s2", "b", epoch=3, primary="a", moved_at_ms=5_000_000),
        "s3": SiteHome("s3", "a", epoch=2, primary="b", moved_at_ms=9_000_000),  # moved away
    }
    assert TakeoverGrace(gate(homes), HORIZON, GRACE)() == (HORIZON - GRACE, 5_000_000 + HORIZON)


def test_a_horizon_within_the_grace_needs_no_boost() -> None:
    homes = {"s1": SiteHome("s1", "b", epoch=2, primary="a", moved_at_ms=1_000)}
    assert TakeoverGrace(gate(homes), GRACE, GRACE)()[0] == 0
    assert TakeoverGrace(gate(homes), 0, GRACE)()[0] == 0
