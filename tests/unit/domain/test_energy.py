"""Counter energy split at window bounds (domain.energy): exact where the power is piecewise
constant with at most one step between readings, refined where a reading's power is off,
conserved always."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.energy import EnergyStep, Interval, Model, energy_step, run_power
from domain.energy_track import PowerRun
from domain.rules import AssetRuleState, Limits, step
from domain.telemetry import Reading

EXACT = Limits(spike_threshold_w=1e9, counter_resolution_wh=1e-12)
LEVELS = ((0.3, 0), (20.0, 20), (40.0, 40), (60.0, 60), (100.0, 100))
"""(power, dim level) of the states a lamp is in; 0 is off (standby)."""


def true_energy(steps: Sequence[tuple[int, float]], a_ms: int, b_ms: int) -> float:
    """Energy of [a, b) when the power is steps[i][1] from steps[i][0] to steps[i+1][0]."""
    total = 0.0
    for i, (start, power_w) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else 2**62
        lo, hi = max(start, a_ms), min(end, b_ms)
        if hi > lo:
            total += power_w * (hi - lo) / HOUR_MS
    return total


def readings_of(
    steps: Sequence[tuple[int, float]],
    times: Sequence[int],
    *,
    power_error: dict[int, float] | None = None,
) -> list[Reading]:
    """Readings at ``times`` of the true power with an exact counter; ``power_error`` scales
    the power of the readings at the given indexes."""
    dims = dict(LEVELS)
    out = []
    for k, ts_ms in enumerate(times):
        power_w = next(p for start, p in reversed(steps) if start <= ts_ms)
        counter_wh = 1_000.0 + true_energy(steps, times[0], ts_ms)
        read_w = power_w * (power_error or {}).get(k, 1.0)
        dim = dims[power_w]
        out.append(
            Reading(
                "s", "b", "r", "a", ts_ms, read_w, 230.0, 0.1, 0.0, dim > 0, dim, None, counter_wh
            )
        )
    return out


def windows(readings: Sequence[Reading], limits: Limits, window_ms: int) -> dict[int, float]:
    """What the agent sums per window: every contribution of every reading."""
    state: AssetRuleState | None = None
    sums: dict[int, float] = {}
    for reading in readings:
        usage = energy_step(state, reading, limits)
        for start_ms, wh, _ in usage.contributions(window_ms):
            sums[start_ms] = sums.get(start_ms, 0.0) + wh
        state, _ = step(state, reading, limits, energy=usage.track)
    return sums


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[tuple[int, float]], list[int]]:
    """Reading times 10-40 s apart over a few hours and a power that steps at most once
    between two readings (anywhere, also exactly on an hour bound)."""
    t0 = draw(st.integers(0, HOUR_MS))
    gaps = draw(st.lists(st.integers(10_000, 40_000), min_size=20, max_size=500))
    times = [t0]
    for gap in gaps:
        times.append(times[-1] + gap)
    level = draw(st.sampled_from(LEVELS))[0]
    steps = [(t0 - 1, level)]
    for k in range(len(times) - 1):
        if draw(st.integers(0, 9)) == 0:
            new = draw(st.sampled_from([p for p, _ in LEVELS if p != level]))
            a, b = times[k] + 1, times[k + 1]
            bound = b - b % HOUR_MS
            at = bound if a <= bound and draw(st.booleans()) else draw(st.integers(a, b))
            steps.append((at, new))
            level = new
    return steps, times


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_one_step_between_readings_makes_every_hour_exact(
    schedule: tuple[list[tuple[int, float]], list[int]],
) -> None:
    steps, times = schedule
    sums = windows(readings_of(steps, times), EXACT, HOUR_MS)
    for start_ms, wh in sums.items():
        truth = true_energy(steps, max(start_ms, times[0]), min(start_ms + HOUR_MS, times[-1]))
        assert math.isclose(wh, truth, rel_tol=1e-9, abs_tol=1e-6), (start_ms, wh, truth)


@settings(max_examples=150, deadline=None)
@given(
    schedules(),
    st.dictionaries(st.integers(0, 499), st.floats(0.5, 2.0), max_size=40),
    st.sampled_from([HOUR_MS, MINUTE_MS, 24 * HOUR_MS]),
)
def test_corrections_move_energy_and_never_make_or_lose_any(
    schedule: tuple[list[tuple[int, float]], list[int]],
    errors: dict[int, float],
    window_ms: int,
) -> None:
    # Readings' powers off by up to a factor of 2 (and blips): the windows still sum to the
    # counter's total, and no window gets less than nothing or more than the whole.
    steps, times = schedule
    sums = windows(readings_of(steps, times, power_error=errors), Limits(1e9), window_ms)
    total = true_energy(steps, times[0], times[-1])
    assert math.isclose(sum(sums.values()), total, rel_tol=1e-9, abs_tol=1e-9)
    assert all(-1e-9 <= wh <= total + 1e-9 for wh in sums.values())


def test_a_step_on_the_hour_read_two_percent_high_is_refined_by_the_readings_after_it() -> None:
    # Standby 0.3 W until 18:00, then 100 W; the first reading after the step reads 98 W.
    bound = 18 * HOUR_MS
    steps = [(0, 0.3), (bound, 100.0)]
    times = list(range(bound - 30 * MINUTE_MS - 5_000, bound + 20 * MINUTE_MS, 25_000))
    first_after = next(k for k, t in enumerate(times) if t > bound)
    readings = readings_of(steps, times, power_error={first_after: 0.98})
    hour_before = bound - HOUR_MS

    truth = true_energy(steps, times[0], bound)
    unrefined = windows(readings[: first_after + 1], EXACT, HOUR_MS)[hour_before]
    refined = windows(readings, EXACT, HOUR_MS)[hour_before]
    # Without what follows, 2 W too little after the step puts it too early: the standby
    # hour gets part of the step's energy.
    assert abs(unrefined - truth) / truth > 0.005
    assert math.isclose(refined, truth, rel_tol=1e-9)


def test_refinement_stops_after_refine_ms() -> None:
    bound = 18 * HOUR_MS
    steps = [(0, 0.3), (bound, 100.0)]
    times = [bound - 20_000, bound + 20_000, bound + 40_000, bound + 400_000 - 20_000]
    readings = readings_of(steps, times, power_error={1: 1.02})
    state: AssetRuleState | None = None
    corrections = []
    for reading in readings:
        usage = energy_step(state, reading, EXACT, refine_ms=300_000)
        corrections.append(usage.corrections)
        state, _ = step(state, reading, EXACT, energy=usage.track)
    assert [len(c) for c in corrections] == [0, 0, 1, 0]
    assert state is not None and state.energy is not None and state.energy.split is None


def test_a_blip_at_the_bound_does_not_move_energy() -> None:
    # Steady 40 W; the reading after the hour reads 1.8x (a blip, not a step).
    steps = [(0, 40.0)]
    times = [HOUR_MS - 15_000, HOUR_MS + 20_000, HOUR_MS + 45_000]
    sums = windows(readings_of(steps, times, power_error={1: 1.8}), EXACT, HOUR_MS)
    assert math.isclose(sums[0], 40.0 * 15 / 3600, rel_tol=1e-9)
    assert math.isclose(sums[HOUR_MS], 40.0 * 45 / 3600, rel_tol=1e-9)


def test_interval_models_split_to_their_total() -> None:
    for model in ("trapezoid", "steady", "step"):
        interval = Interval(HOUR_MS - 10_000, HOUR_MS + 30_000, 0.5, model, 10.0, 60.0)
        if model == "trapezoid":
            interval = Interval(HOUR_MS - 10_000, HOUR_MS + 30_000, 35 * 40 / 3600, model, 10, 60)
        parts = interval.split(HOUR_MS)
        assert [(s, c) for s, _, c in parts] == [(0, 10_000), (HOUR_MS, 30_000)]
        assert math.isclose(sum(wh for _, wh, _ in parts), interval.total_wh)


def test_the_run_before_a_step_outweighs_its_last_reading() -> None:
    # 100 W until 07:00, then standby; the last reading before the step reads 98 W.
    bound = 7 * HOUR_MS
    steps = [(0, 60.0), (bound - HOUR_MS, 100.0), (bound, 0.3)]
    times = list(range(bound - HOUR_MS + 10_000, bound + 30 * MINUTE_MS, 30_000))
    last_before = max(k for k, t in enumerate(times) if t <= bound)
    sums = windows(readings_of(steps, times, power_error={last_before: 0.98}), EXACT, HOUR_MS)
    truth = true_energy(steps, bound, times[-1])
    assert math.isclose(sums[bound], truth, rel_tol=1e-9)


def test_a_counter_gap_counts_in_the_windows_that_hold_it_with_no_coverage() -> None:
    # 60 W; readings stop for 20 min inside 01:00-02:00, then for 40 min across 03:00.
    steps = [(0, 60.0)]
    times = [
        *range(HOUR_MS, HOUR_MS + 10 * MINUTE_MS + 1, 30_000),
        *range(HOUR_MS + 30 * MINUTE_MS, 3 * HOUR_MS - 20 * MINUTE_MS + 1, 30_000),
        *range(3 * HOUR_MS + 20 * MINUTE_MS, 4 * HOUR_MS, 30_000),
    ]
    readings = readings_of(steps, times)
    state: AssetRuleState | None = None
    hours: dict[int, list[float]] = {}
    days: dict[int, list[float]] = {}
    for reading in readings:
        usage = energy_step(state, reading, EXACT)
        for start, wh, covered in usage.contributions(HOUR_MS):
            hours.setdefault(start, [0.0, 0])[0] += wh
            hours[start][1] += covered
        for start, wh, covered in usage.contributions(24 * HOUR_MS):
            days.setdefault(start, [0.0, 0])[0] += wh
            days[start][1] += covered
        state, _ = step(state, reading, EXACT, energy=usage.track)
    # The 20-minute gap is inside 01:00-02:00: all of its energy, none of its coverage.
    assert math.isclose(hours[HOUR_MS][0], 60.0, rel_tol=1e-9)
    assert hours[HOUR_MS][1] == 40 * MINUTE_MS
    # The 40-minute gap crosses 03:00: neither hour gets any of it.
    assert math.isclose(hours[2 * HOUR_MS][0], 40.0, rel_tol=1e-9)
    assert math.isclose(hours[3 * HOUR_MS][0], 60.0 * (40 * MINUTE_MS - 30_000) / HOUR_MS)
    # The day holds both gaps: every watt-hour the counter counted.
    assert math.isclose(days[0][0], true_energy(steps, times[0], times[-1]), rel_tol=1e-9)
    assert days[0][1] == times[-1] - times[0] - 60 * MINUTE_MS


def test_a_gap_without_a_counter_counts_nothing() -> None:
    steps = [(0, 60.0)]
    readings = [
        msgspec.structs.replace(r, energy_wh=None)
        for r in readings_of(steps, [HOUR_MS, HOUR_MS + 30 * MINUTE_MS])
    ]
    state, _ = step(None, readings[0], EXACT)
    assert energy_step(state, readings[1], EXACT).contributions(HOUR_MS) == []


def test_noisy_readings_and_a_whole_number_counter_are_weighed_as_they_are() -> None:
    # 100 W read with +-10 % noise (configured: 1 %) and an exact counter: the run's sample
    # variance lets the counter dominate. A whole-number counter is weighed as 1 Wh resolution
    # (configured: 1 mWh): over 25 s the readings dominate it, but not a 1 mWh one.
    limits = Limits(1e9)
    run = PowerRun(0, 10.0, True, 100, 90.0, 0.0, 0.0, 0)
    for k, power_w in enumerate([90.0, 110.0, 95.0, 105.0, 92.0, 108.0]):
        run = PowerRun(
            0, 10.0, True, 100, 90.0, run.sum_w + power_w, run.sum_sq_w + power_w**2, k + 1
        )
    exact_wh = 10.0 + 100.0 * 150_000 / HOUR_MS
    assert abs(run_power(run, 150_000, exact_wh, limits) - 100.0) < 0.5
    # Two readings of 120 W; the counter moved 1 Wh (whole numbers) or 0.694 Wh (1 mWh).
    biased = PowerRun(0, 10.0, True, 100, 120.0, 240.0, 28_800.0, 2)
    assert abs(run_power(biased, 25_000, 11.0, limits) - 120.0) < 0.1
    assert abs(run_power(biased, 25_000, 10.694, limits) - 99.94) < 0.2


def test_a_counter_reset_inside_a_steady_run_takes_the_runs_power() -> None:
    # 100 W; the counter restarts from 0 at the 5th reading, whose power reads 96 W.
    steps = [(0, 100.0)]
    times = list(range(HOUR_MS, HOUR_MS + 10 * 30_000, 30_000))
    readings = readings_of(steps, times, power_error={4: 0.96})
    base = readings[4].energy_wh
    assert base is not None
    readings[4:] = [
        msgspec.structs.replace(r, energy_wh=r.energy_wh - base + 0.002)  # type: ignore[operator]
        for r in readings[4:]
    ]
    sums = windows(readings, EXACT, HOUR_MS)
    # Trapezoid over the reset interval would lose (100 - 96) / 2 W for 30 s: 0.0167 Wh.
    truth = true_energy(steps, times[0], times[-1])
    assert abs(sums[HOUR_MS] - truth) < 1e-6


@given(
    st.integers(min_value=0, max_value=3 * DAY_MS),
    st.integers(min_value=1, max_value=2 * HOUR_MS),
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
    st.sampled_from(["trapezoid", "steady", "step"]),
    st.booleans(),
)
@settings(deadline=None)
def test_an_interval_within_one_hour_is_one_whole_contribution_to_its_hour_and_its_day(
    t1_ms: int, span_ms: int, total_wh: float, model: Model, observed: bool
) -> None:
    """The lighting agent adds such an interval to its hour and its day without splitting it:
    this is what the split gives."""
    interval = Interval(t1_ms, t1_ms + span_ms, total_wh, model, 3.0, 7.0, observed)
    step_ = EnergyStep(None, interval)
    hour_ms = t1_ms - t1_ms % HOUR_MS
    if interval.t2_ms <= hour_ms + HOUR_MS:
        covered_ms = span_ms if observed else 0
        assert step_.contributions(HOUR_MS) == [(hour_ms, total_wh, covered_ms)]
        assert step_.contributions(DAY_MS) == [(t1_ms - t1_ms % DAY_MS, total_wh, covered_ms)]
