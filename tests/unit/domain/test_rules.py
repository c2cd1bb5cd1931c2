"""Per-asset rules: faults, spikes, out-of-order readings, usage integration."""

from __future__ import annotations

import msgspec
import pytest

from domain.events import AssetState, EnergySpike, Fault
from domain.rules import (
    SPIKE_RULE,
    AssetRuleState,
    Limits,
    OpenFault,
    OpenSpike,
    asset_state,
    expire,
    step,
)
from domain.telemetry import Reading
from domain.usage import Contribution, interval_energy, usage_since_last

LIMITS = Limits(spike_threshold_w=100.0)
IDS = ("s", "b", "r", "a")


def reading(ts_ms: int, power_w: float = 50.0, fault_code: str | None = None) -> Reading:
    return Reading(*IDS, ts_ms, power_w, 230.0, power_w / 230.0, 0.0, True, 100, fault_code)


def run(readings: list[Reading], limits: Limits = LIMITS) -> tuple[AssetRuleState, list[object]]:
    state: AssetRuleState | None = None
    events: list[object] = []
    for r in readings:
        state, new = step(state, r, limits)
        events.extend(new)
    assert state is not None
    return state, events


def test_first_reading_starts_state_without_events() -> None:
    state, events = step(None, reading(1000, 42.0), LIMITS)
    assert state == AssetRuleState(1000, 42.0, None, None, *IDS, last_on=True)
    assert events == []


def test_fault_opens_once_and_clears_with_the_same_event_id() -> None:
    state, events = run(
        [reading(0), reading(60_000, fault_code="E1"), reading(120_000, fault_code="E1")]
    )
    opened = Fault(*IDS, "E1", 60_000, "open", None)
    assert events == [opened]
    assert state.fault == OpenFault("E1", 60_000)

    state, cleared = step(state, reading(180_000), LIMITS)
    assert cleared == [Fault(*IDS, "E1", 60_000, "cleared", 180_000)]
    assert isinstance(cleared[0], Fault)
    assert cleared[0].event_id == opened.event_id
    # Kept for the cool-down, cleared: a re-opening continues it.
    assert state.fault == OpenFault("E1", 60_000, 180_000)
    assert step(state, reading(240_000), LIMITS)[1] == []


def test_a_different_code_clears_the_episode_and_opens_a_new_one() -> None:
    _, events = run([reading(0, fault_code="E1"), reading(60_000, fault_code="E2")])
    assert events == [
        Fault(*IDS, "E1", 0, "open", None),
        Fault(*IDS, "E1", 0, "cleared", 60_000),
        Fault(*IDS, "E2", 60_000, "open", None),
    ]


def test_a_spike_is_raised_open_at_confirmation_and_closed_at_its_end_with_exact_excess() -> None:
    _, events = run(
        [
            reading(0, 50.0),
            reading(60_000, 160.0),  # 60 W above for 1 min: 1.0 Wh
            reading(120_000, 220.0),  # 120 W above for 1 min: 2.0 Wh
            reading(180_000, 100.0),  # at the threshold: the episode ends here
            reading(240_000, 100.0),
        ]
    )
    # Confirmed at its second reading above: raised open with the peak and excess so far.
    opened = EnergySpike(*IDS, 60_000, None, 220.0, 100.0, 1.0, SPIKE_RULE, status="open")
    closed = EnergySpike(*IDS, 60_000, 180_000, 220.0, 100.0, 3.0, SPIKE_RULE)
    assert events == [opened, closed]
    assert opened.event_id == closed.event_id and (opened.revision, closed.revision) == (1, 2)


def test_open_spike_is_kept_in_state() -> None:
    state, events = run([reading(0, 160.0), reading(60_000, 130.0)])
    assert events == [EnergySpike(*IDS, 0, None, 160.0, 100.0, 1.0, SPIKE_RULE, status="open")]
    assert state.spike == OpenSpike(
        0, 160.0, 1.0, 100.0, readings=2, last_threshold_w=100.0, confirmed=True
    )


def test_spike_gap_adds_no_excess_and_threshold_is_fixed_per_episode() -> None:
    limits = Limits(spike_threshold_w=100.0, max_gap_ms=120_000)
    state, _ = run([reading(0, 160.0), reading(60_000, 190.0)], limits)
    # 300 s gap > max_gap: no excess for [60 s, 360 s), though the episode goes on.
    state, events = step(state, reading(360_000, 130.0), limits)
    assert events == []
    state, events = step(state, reading(420_000, 90.0), limits)
    # 60 W for 1 min, then 30 W for 1 min: 1.5 Wh.
    assert events == [EnergySpike(*IDS, 0, 420_000, 190.0, 100.0, 1.5, SPIKE_RULE)]


def test_spike_threshold_is_judged_per_reading() -> None:
    # The second reading would be above the first one's threshold (100 W), not its own.
    state, _ = run([reading(0, 160.0)])
    state, events = step(state, reading(60_000, 130.0), Limits(500.0))
    assert events == [] and state.spike is None


def test_spike_and_fault_in_the_same_step() -> None:
    state, events = run([reading(0, 150.0, "E1"), reading(30_000, 150.0), reading(60_000, 40.0)])
    assert events == [
        Fault(*IDS, "E1", 0, "open", None),
        Fault(*IDS, "E1", 0, "cleared", 30_000),
        EnergySpike(
            *IDS, 0, None, 150.0, 100.0, 50 * 30_000 / 3_600_000, SPIKE_RULE, "asset", "open"
        ),
        EnergySpike(*IDS, 0, 60_000, 150.0, 100.0, 50 * 60_000 / 3_600_000, SPIKE_RULE),
    ]
    cleared = OpenFault("E1", 0, 30_000)
    assert state == AssetRuleState(60_000, 40.0, cleared, None, *IDS, last_on=True)


def test_a_one_reading_blip_is_no_spike() -> None:
    _, events = run([reading(0, 50.0), reading(60_000, 180.0), reading(120_000, 50.0)])
    assert events == []


def test_a_fault_re_opening_within_the_cool_down_continues_it() -> None:
    limits = Limits(100.0, cooldown_ms=120_000)
    _, events = run(
        [
            reading(0, fault_code="E1"),
            reading(60_000),  # cleared
            reading(180_000, fault_code="E1"),  # 120 s after: the same fault again
            reading(240_000),
            reading(361_000, fault_code="E1"),  # 121 s after: a new fault
        ],
        limits,
    )
    assert events == [
        Fault(*IDS, "E1", 0),
        Fault(*IDS, "E1", 0, "cleared", 60_000),
        Fault(*IDS, "E1", 0, "open", None, 2),
        Fault(*IDS, "E1", 0, "cleared", 240_000, 2),
        Fault(*IDS, "E1", 361_000),
    ]
    revisions = [e.revision for e in events if isinstance(e, Fault)]
    assert revisions == [1, 2, 3, 4, 1]
    assert len({e.event_id for e in events if isinstance(e, Fault)}) == 2


@pytest.mark.parametrize("ts_ms", [59_999, 60_000])
def test_out_of_order_and_duplicate_readings_are_ignored(ts_ms: int) -> None:
    state, _ = run([reading(0, 150.0, "E1"), reading(60_000, 160.0, "E1")])
    same, events = step(state, reading(ts_ms, 10.0), LIMITS)
    assert same is state
    assert events == []
    assert usage_since_last(state, reading(ts_ms), LIMITS) == []


def test_rule_state_survives_msgpack_round_trip() -> None:
    state = AssetRuleState(5, 1.5, OpenFault("E1", 1), OpenSpike(2, 300.0, 0.25, 100.0))
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=AssetRuleState)
    assert decoded == state
    empty = AssetRuleState(5, 1.5)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(empty), type=AssetRuleState) == empty


def usage_contributions(
    t1_ms: int, power_w: float, t2_ms: int, max_gap_ms: int, window_ms: int = 3_600_000
) -> list[Contribution]:
    """Energy of an interval at constant power (both estimators agree on it)."""
    parts = interval_energy(
        t1_ms, power_w, t2_ms, power_w, max_gap_ms=max_gap_ms, window_ms=window_ms
    )
    return [(start, round(wh, 12), covered) for start, wh, covered in parts]


def test_usage_within_one_window() -> None:
    assert usage_contributions(3_540_000, 36.0, 3_600_000, 300_000) == [(0, 0.6, 60_000)]
    assert usage_contributions(3_600_000, 36.0, 3_660_000, 300_000) == [(3_600_000, 0.6, 60_000)]


def test_usage_splits_exactly_at_the_hour() -> None:
    assert usage_contributions(3_590_000, 36.0, 3_650_000, 300_000) == [
        (0, 0.1, 10_000),
        (3_600_000, 0.5, 50_000),
    ]


def test_usage_spanning_several_windows() -> None:
    assert usage_contributions(1_800_000, 10.0, 9_000_000, 10_000_000) == [
        (0, 5.0, 1_800_000),
        (3_600_000, 10.0, 3_600_000),
        (7_200_000, 5.0, 1_800_000),
    ]


def test_usage_with_other_window_sizes_and_negative_times() -> None:
    assert usage_contributions(-1000, 3600.0, 1000, 300_000) == [
        (-3_600_000, 1.0, 1000),
        (0, 1.0, 1000),
    ]
    assert usage_contributions(50_000, 36.0, 70_000, 300_000, window_ms=60_000) == [
        (0, 0.1, 10_000),
        (60_000, 0.1, 10_000),
    ]


def test_usage_gap_contributes_nothing() -> None:
    assert usage_contributions(0, 36.0, 300_000, 300_000) == [(0, 3.0, 300_000)]
    assert usage_contributions(0, 36.0, 300_001, 300_000) == []
    assert usage_contributions(10, 36.0, 10, 300_000) == []
    assert usage_contributions(10, 36.0, 5, 300_000) == []


def test_usage_since_last_uses_the_state_before_the_step() -> None:
    assert usage_since_last(None, reading(0), LIMITS) == []
    state, _ = step(None, reading(0, 72.0), LIMITS)
    # Trapezoid: (72 + 5) / 2 W for 50 s.
    assert usage_since_last(state, reading(50_000, 5.0), LIMITS) == [
        (0, (72.0 + 5.0) / 2 * 50 / 3600, 50_000)
    ]


def test_asset_state_of_a_reading() -> None:
    assert asset_state(reading(7, 12.5, "E9")) == AssetState(*IDS, 7, 12.5, True, 100, "E9")


def test_a_raised_spike_is_closed_when_its_asset_is_retired_an_unconfirmed_one_dropped() -> None:
    limits = Limits(100.0, retention_ms=600_000)
    raised, events = run([reading(0, 160.0), reading(60_000, 190.0)], limits)
    assert [e.status for e in events if isinstance(e, EnergySpike)] == ["open"]
    gone, closing = expire(raised, 660_000, limits)
    assert gone is None
    assert closing == [EnergySpike(*IDS, 0, 60_000, 190.0, 100.0, 1.0, SPIKE_RULE)]
    unconfirmed, _ = run([reading(0, 160.0)], limits)
    assert expire(unconfirmed, 600_000, limits) == (None, [])
