"""Site homes, the region gate and re-homing (lighting.regions), without AWS."""

from __future__ import annotations

import pytest

from lighting.regions import HomeGate, SiteHome, assign_homes, gated, moved, returning


def test_failover_moves_only_the_lost_regions_sites_with_the_next_epoch() -> None:
    homes = assign_homes(["s1", "s2"], "a") + assign_homes(["s3"], "b")
    plan = moved(homes, "a", "b", now_ms=5)
    assert plan == [SiteHome("s1", "b", 2, "a", 5), SiteHome("s2", "b", 2, "a", 5)]
    assert moved(homes, "a", "a", now_ms=5) == []


def test_failback_returns_sites_to_their_primary() -> None:
    homes = [SiteHome("s1", "b", 2, "a", 5), SiteHome("s3", "b", 1, "b", 0)]
    assert returning(homes, "a", now_ms=9) == [SiteHome("s1", "a", 3, "a", 9)]


def test_gate_refuses_other_regions_sites_and_sees_a_move_after_refresh() -> None:
    now = [0]
    view = {"s1": SiteHome("s1", "a", 1, "a")}
    gate = HomeGate(lambda: dict(view), "b", refresh_ms=1_000, now_ms=lambda: now[0])
    assert gate.refusal("s1") == "not home: site s1 is homed in a (epoch 1)"
    assert gate.refusal("unknown-site") is None
    view["s1"] = SiteHome("s1", "b", 2, "a", 10)
    now[0] = 999
    assert gate.refusal("s1") is not None
    now[0] = 1_000
    assert gate.refusal("s1") is None


def test_no_homes_registered_means_every_site_is_processed() -> None:
    gate = HomeGate(dict, "b", refresh_ms=1_000, now_ms=lambda: 0)
    assert gate.refusal("s1") is None


def test_gated_decoder_raises_value_error_for_refused_sites() -> None:
    class R:
        site_id = "s1"

    gate = HomeGate(lambda: {"s1": SiteHome("s1", "a")}, "b", 1_000, lambda: 0)
    decode = gated(lambda data, arrival_ms: R(), gate)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="not home"):
        decode(b"{}", 0)
