"""Site homes, the region gate and re-homing (lighting.regions), without AWS."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from core.clock import ManualClock
from core.errors import SourceError
from core.retry import Backoff
from domain.registry import Registry
from domain.telemetry import Reading, encode_reading
from lighting.agents import build_app
from lighting.regions import HomeGate, SiteHome, assign_homes, moved, returning
from lighting.registry import RegistryCache, empty_registry

TS_MS = 1_795_870_800_000


def reading(site_id: str, asset_id: str = "lamp-1") -> Reading:
    return Reading(site_id, "b1", "r1", asset_id, TS_MS, 10.0, 230.0, 0.05, 300.0, True, 80)


def test_failover_moves_only_the_lost_regions_sites_with_the_next_epoch() -> None:
    homes = assign_homes(["s1", "s2"], "a") + assign_homes(["s3"], "b")
    plan = moved(homes, "a", "b", now_ms=5)
    assert plan == [SiteHome("s1", "b", 2, "a", 5), SiteHome("s2", "b", 2, "a", 5)]
    assert moved(homes, "a", "a", now_ms=5) == []


def test_failback_returns_sites_to_their_primary() -> None:
    homes = [SiteHome("s1", "b", 2, "a", 5), SiteHome("s3", "b", 1, "b", 0)]
    assert returning(homes, "a", now_ms=9) == [SiteHome("s1", "a", 3, "a", 9)]


def test_gate_refuses_other_regions_sites_and_sees_a_move_after_refresh() -> None:
    now = ManualClock()
    view = {"s1": SiteHome("s1", "a", 1, "a")}
    gate = HomeGate(lambda: dict(view), "b", refresh_ms=1_000, now_ms=now)
    assert gate.refusal("s1") == "not home: site s1 is homed in a (epoch 1)"
    assert gate.refusal("unknown-site") is None
    view["s1"] = SiteHome("s1", "b", 2, "a", 10)
    now.now_ms = 999
    assert gate.homes.refresh_if_due() is True
    assert gate.refusal("s1") is not None  # not due yet: the copy in use stays
    now.now_ms = 1_000
    assert gate.refusal("s1") is not None  # due, but reading never reloads
    assert gate.homes.refresh_if_due() is True
    assert gate.refusal("s1") is None


def test_no_homes_registered_means_every_site_is_processed() -> None:
    gate = HomeGate(dict, "b", refresh_ms=1_000, now_ms=lambda: 0)
    assert gate.refusal("s1") is None


def test_the_apps_decoder_refuses_the_sites_homed_elsewhere_with_a_value_error() -> None:
    gate = HomeGate(lambda: {"s1": SiteHome("s1", "a")}, "b", 1_000, lambda: 0)
    decode = build_app(empty_registry(), topic="t", grace_ms=60_000, gate=gate).decoder
    with pytest.raises(ValueError, match=r"^not home: site s1 is homed in a"):
        decode(encode_reading(reading("s1")), TS_MS)
    assert decode(encode_reading(reading("s2")), TS_MS).site_id == "s2"


def test_the_gate_refuses_before_admission_so_no_unknown_asset_place_is_taken() -> None:
    gate = HomeGate(lambda: {"s1": SiteHome("s1", "a")}, "b", 1_000, lambda: 0)
    registry = RegistryCache(lambda: Registry([]), 2**62, lambda: 0, unknown_asset_cap=1)
    decode = build_app(registry, topic="t", grace_ms=60_000, gate=gate).decoder
    with pytest.raises(ValueError, match=r"^not home"):
        decode(encode_reading(reading("s1", "lamp-elsewhere")), TS_MS)
    assert registry.unknown_asset_count == 0
    assert decode(encode_reading(reading("s2", "lamp-here")), TS_MS).asset_id == "lamp-here"


# -- the gate's copy is refreshed outside decoding (core.refresh) ----------------------------


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "Query")


def decoder(gate: HomeGate) -> Callable[[str], object]:
    """The lighting app's decoder behind `gate`, fed readings that differ by their site."""
    decode = build_app(empty_registry(), topic="t", grace_ms=60_000, gate=gate).decoder
    return lambda site: decode(encode_reading(reading(site)), TS_MS)


def verdict(decode: Callable[[str], object], site: str) -> str:
    try:
        decode(site)
    except ValueError as exc:
        return str(exc)
    return "processed"


class Loader:
    """Returns the views it is given in turn (the last one again and again); an exception in
    the list is raised; `gate` (when set) is cleared while a call waits for it."""

    def __init__(self, *results: dict[str, SiteHome] | BaseException) -> None:
        self.results = list(results)
        self.calls = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    def __call__(self) -> dict[str, SiteHome]:
        self.calls += 1
        result = self.results[min(self.calls - 1, len(self.results) - 1)]
        if self.calls >= 2:
            self.entered.set()
            if self.gate is not None:
                self.gate.wait()
        if isinstance(result, BaseException):
            raise result
        return dict(result)


HOMED_IN_A = {"s1": SiteHome("s1", "a", 1, "a")}
MOVED_TO_B = {"s1": SiteHome("s1", "b", 2, "a", 10)}
REFUSED = "not home: site s1 is homed in a (epoch 1)"


def test_a_failed_refresh_keeps_the_previous_homes_and_decode_never_loads() -> None:
    now = ManualClock()
    loader = Loader(HOMED_IN_A, throttled(), MOVED_TO_B)
    gate = HomeGate(loader, "b", refresh_ms=1_000, now_ms=now)
    decode = decoder(gate)
    now.now_ms = 10_000  # ten refresh intervals overdue
    assert [verdict(decode, "s1") for _ in range(1_000)] == [REFUSED] * 1_000
    assert loader.calls == 1  # only the first load: decoding never reloads
    assert gate.homes.refresh_if_due() is False  # throttled: the previous copy stays
    assert (gate.homes.failures, loader.calls) == (1, 2)
    assert verdict(decode, "s1") == REFUSED and loader.calls == 2
    assert gate.homes.refresh_if_due() is True  # not before the pause after a failure
    assert loader.calls == 2 and verdict(decode, "s1") == REFUSED
    now.now_ms += 2_000
    assert gate.homes.refresh_if_due() is True and loader.calls == 3
    assert verdict(decode, "s1") == "processed"
    assert gate.homes.age_ms == 0


def test_the_homes_change_after_a_background_refresh() -> None:
    now = ManualClock()
    loader = Loader(HOMED_IN_A, MOVED_TO_B)
    gate = HomeGate(loader, "b", refresh_ms=10, now_ms=now, background=True)
    decode = decoder(gate)
    try:
        assert verdict(decode, "s1") == REFUSED
        now.now_ms = 10
        assert loader.entered.wait(timeout=30), "the background thread never reloaded"
    finally:
        gate.close()  # joins the thread: its reload is done
    assert verdict(decode, "s1") == "processed"
    assert gate.homes.failures == 0


def test_decode_goes_on_while_a_background_reload_hangs_on_dynamodb() -> None:
    now = ManualClock()
    loader = Loader(HOMED_IN_A, MOVED_TO_B)
    loader.gate = threading.Event()  # the reload hangs until set: a slow, throttled Query
    gate = HomeGate(loader, "b", refresh_ms=10, now_ms=now, background=True)
    decode = decoder(gate)
    try:
        now.now_ms = 10
        assert loader.entered.wait(timeout=30), "the background thread never reloaded"
        # The reload is under way and stuck: every record is judged by the copy in use.
        assert [verdict(decode, "s1") for _ in range(1_000)] == [REFUSED] * 1_000
        assert verdict(decode, "s2") == "processed"
        assert loader.calls == 2
    finally:
        loader.gate.set()
        gate.close()
    assert verdict(decode, "s1") == "processed"


def test_the_first_load_is_retried_then_refuses_to_start() -> None:
    def no_sleep() -> Backoff:
        return Backoff(rng=random.Random(0), sleep=lambda _s: None)

    loader = Loader(throttled(), throttled(), HOMED_IN_A)
    gate = HomeGate(loader, "b", 1_000, lambda: 0, backoff=no_sleep())
    assert loader.calls == 3 and gate.refusal("s1") == REFUSED
    with pytest.raises(SourceError, match="site homes could not be loaded: ThrottlingException"):
        HomeGate(Loader(throttled()), "b", 1_000, lambda: 0, backoff=no_sleep())
