"""Spikes confirmed on the event clock (``spike_due_ms``, ``clock_confirm``): the open version
comes when the shard's clock reaches the rule's time, within the hold of the last reading,
and claims nothing the end rule would not report."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import DomainEvent, EnergySpike
from domain.rules import AssetRuleState, Limits, step
from domain.rules.spikes import clock_confirm, spike_due_ms
from domain.telemetry import Reading

MIN_SPIKE_MS = 120_000
LIMITS = Limits(spike_threshold_w=100.0, min_spike_ms=MIN_SPIKE_MS, min_spike_readings=2)
HOLD_MS = LIMITS.spike_hold_ms
T0_MS = 1_800_000_000_000
IDS = ("s", "b", "r", "a")


def reading(ts_ms: int, power_w: float) -> Reading:
    return Reading(*IDS, ts_ms, power_w, 230.0, power_w / 230.0, 0.0, True, 100, None)


def apply(readings: list[Reading], limits: Limits = LIMITS) -> AssetRuleState:
    state: AssetRuleState | None = None
    for r in readings:
        state, _ = step(state, r, limits)
    assert state is not None
    return state


def test_two_readings_above_within_the_hold_are_confirmed_when_the_clock_reaches_the_rule() -> None:
    # Above at 0 s and 70 s, then silent: the due time (120 s) is 50 s after the last reading.
    state = apply([reading(T0_MS, 200.0), reading(T0_MS + 70_000, 210.0)])
    due_ms = T0_MS + MIN_SPIKE_MS
    assert spike_due_ms(state, LIMITS) == due_ms
    assert clock_confirm(state, due_ms - 1, LIMITS) == (state, [])
    confirmed, events = clock_confirm(state, due_ms, LIMITS)
    assert events == [
        EnergySpike(
            *IDS,
            started_at_ms=T0_MS,
            ended_at_ms=None,
            peak_w=210.0,
            threshold_w=100.0,
            excess_wh=100.0 * 70_000 / 3_600_000,
            rule="power_above_threshold",
            status="open",
        )
    ]
    assert confirmed.spike is not None and confirmed.spike.confirmed
    # Raised once: neither the clock nor the asset's next reading above raises it again.
    assert clock_confirm(confirmed, due_ms + 600_000, LIMITS) == (confirmed, [])
    _, again = step(confirmed, reading(T0_MS + 130_000, 220.0), LIMITS)
    assert again == []


def test_a_device_silent_after_one_or_two_readings_above_is_not_claimed_beyond_the_hold() -> None:
    late_clock_ms = T0_MS + 3_600_000
    # One reading above: the rule wants two, whatever the clock says.
    one = apply([reading(T0_MS, 200.0)])
    assert spike_due_ms(one, LIMITS) is None
    assert clock_confirm(one, late_clock_ms, LIMITS) == (one, [])
    # Two within the hold, where the rule wants three.
    three = Limits(spike_threshold_w=100.0, min_spike_ms=MIN_SPIKE_MS, min_spike_readings=3)
    short = apply([reading(T0_MS, 200.0), reading(T0_MS + 70_000, 200.0)], three)
    assert spike_due_ms(short, three) is None
    assert clock_confirm(short, late_clock_ms, three) == (short, [])
    # Two, the last 90 s before the due time: the hold (60 s) does not reach it.
    two = apply([reading(T0_MS, 200.0), reading(T0_MS + 30_000, 200.0)])
    assert MIN_SPIKE_MS - 30_000 > HOLD_MS
    assert spike_due_ms(two, LIMITS) is None
    assert clock_confirm(two, late_clock_ms, LIMITS) == (two, [])
    # Exactly the hold before the due time: trusted; a millisecond more: not.
    edge = apply([reading(T0_MS, 200.0), reading(T0_MS + MIN_SPIKE_MS - HOLD_MS, 200.0)])
    assert spike_due_ms(edge, LIMITS) == T0_MS + MIN_SPIKE_MS
    past = apply([reading(T0_MS, 200.0), reading(T0_MS + MIN_SPIKE_MS - HOLD_MS - 1, 200.0)])
    assert spike_due_ms(past, LIMITS) is None
    # max_gap_ms tighter than the hold bounds it too.
    tight = Limits(spike_threshold_w=100.0, min_spike_ms=MIN_SPIKE_MS, max_gap_ms=40_000)
    within = apply([reading(T0_MS, 200.0), reading(T0_MS + 70_000, 200.0)], tight)
    assert spike_due_ms(within, tight) is None


def test_a_reading_that_came_late_leaves_the_confirmation_to_the_next_reading() -> None:
    state = apply([reading(T0_MS, 200.0), reading(T0_MS + 70_000, 200.0)])
    assert spike_due_ms(state, LIMITS, lag_ms=HOLD_MS) == T0_MS + MIN_SPIKE_MS
    assert spike_due_ms(state, LIMITS, lag_ms=HOLD_MS + 1) is None


def closed(events: list[DomainEvent]) -> list[EnergySpike]:
    return [e for e in events if isinstance(e, EnergySpike) and e.status == "closed"]


# One asset's readings in order, as runs of readings above the 100 W threshold then below
# it: the gap before each reading (1-100 s: within and beyond the hold), its power, and where
# between it and the next reading the shard's clock is checked (fractions of the gap to the
# next reading, often just before it; in order, the clock never passes a reading not yet
# processed). The last reading is below, so every episode ends.
reading_st = st.tuples(
    st.integers(1_000, 45_000) | st.integers(1_000, 100_000),
    st.lists(st.floats(0.0, 0.999) | st.just(0.99999), max_size=3),
)


@st.composite
def steps_st(draw: st.DrawFn) -> list[tuple[int, float, list[float]]]:
    steps: list[tuple[int, float, list[float]]] = []
    for _ in range(draw(st.integers(1, 5))):
        for power_w, most in ((200.0, 9), (50.0, 3)):
            for gap_ms, fractions in draw(st.lists(reading_st, max_size=most)):
                steps.append((gap_ms, power_w + draw(st.sampled_from([0.0, 30.0])), fractions))
    return steps


@settings(max_examples=300, deadline=None)
@given(steps=steps_st(), end_gap_ms=st.integers(1_000, 100_000), readings_needed=st.integers(1, 3))
def test_on_in_order_readings_every_clock_confirmed_spike_is_one_the_end_rule_reports(
    steps: list[tuple[int, float, list[float]]], end_gap_ms: int, readings_needed: int
) -> None:
    limits = Limits(
        spike_threshold_w=100.0, min_spike_ms=MIN_SPIKE_MS, min_spike_readings=readings_needed
    )
    readings, checks, ts_ms = [], [], T0_MS
    for gap_ms, power_w, fractions in steps:
        ts_ms += gap_ms
        readings.append(reading(ts_ms, power_w))
        checks.append(fractions)
    readings.append(reading(ts_ms + end_gap_ms, 50.0))
    checks.append([])
    # The reading path alone (no clock), as before clock confirmation.
    by_readings: list[DomainEvent] = []
    state: AssetRuleState | None = None
    for r in readings:
        state, events = step(state, r, limits)
        by_readings.extend(events)
    # The same readings with the clock checked between them.
    with_clock: list[DomainEvent] = []
    by_clock: list[tuple[int, EnergySpike]] = []
    state = None
    for index, r in enumerate(readings):
        state, events = step(state, r, limits)
        with_clock.extend(events)
        if index + 1 == len(readings):
            break
        gap_ms = readings[index + 1].ts_ms - r.ts_ms
        for clock_ms in sorted(r.ts_ms + int(f * gap_ms) for f in checks[index]):
            state, events = clock_confirm(state, clock_ms, limits)
            by_clock.extend((clock_ms, e) for e in events if isinstance(e, EnergySpike))
            with_clock.extend(events)
    # No new false positives: the episodes reported closed are exactly the reading path's.
    assert closed(with_clock) == closed(by_readings)
    ended = {e.event_id: e for e in closed(by_readings)}
    for clock_ms, spike in by_clock:
        assert spike.status == "open"
        # Reported closed by the end rule, with the reading path's start.
        assert spike.event_id in ended
        assert spike.started_at_ms == ended[spike.event_id].started_at_ms
        # Claimed at the rule's time, and not beyond the hold of a reading above.
        due_ms = spike.started_at_ms + MIN_SPIKE_MS
        assert clock_ms >= due_ms
        last_ms = max(r.ts_ms for r in readings if r.ts_ms <= clock_ms)
        assert due_ms - last_ms <= HOLD_MS
    # Each episode is raised open once, by the clock or by a reading.
    opened = [e.event_id for e in with_clock if isinstance(e, EnergySpike) and e.status == "open"]
    assert len(opened) == len(set(opened))
    assert set(opened) == {
        e.event_id for e in by_readings if isinstance(e, EnergySpike) and e.status == "open"
    } | {spike.event_id for _, spike in by_clock}
