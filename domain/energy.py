"""Energy of the interval between two readings of one asset, as a model that can be split at
any window bound, and the small state a counter asset needs to split it well.

The interval ``[t1, t2)`` between consecutive readings has one of three models:

- ``trapezoid``: no counter on both readings (telemetry v1), or the counter went down (reset
  or rollover: that one interval is estimated, the next resumes from the new value). Total
  ``(p1 + p2) / 2 * (t2 - t1)``, power linear between the readings; a reset inside a steady
  run takes the run's power instead (``steady``, estimated total).
- ``steady``: counter, and the second reading continues the asset's *steady run* (same on/off,
  same dim level, power within ``RUN_TOLERANCE`` of the run's first reading). The counter
  delta, spread in proportion to time: constant power.
- ``step``: counter, and the second reading starts a new run (switching, dimming, a spike).
  The counter delta, with power stepping once from ``before_w`` (the estimate of the run that
  ended at ``t1``) to ``after_w`` (the run that starts at ``t2``: at first its one reading) at
  the time that makes the energy match the delta. If no such time lies in the interval (two
  steps, or noise when the two powers are close) it is spread in proportion to time.

The totals of counter intervals are exact; only where a window bound cuts an interval is
there anything to estimate. A run's power combines the mean of its readings (each read to
``Limits.power_accuracy``, relative) with the counter's average over the run (quantised to
``Limits.counter_resolution_wh``), weighted by the inverse of their variances: the counter
dominates for long runs and high power, the readings for short runs and standby power. A
meter noisier than configured shows in the run's sample variance, a coarser counter in the
digits of its values (whole numbers: 1 Wh): the larger of configured and shown is used.

Refinement: when a ``step`` interval is cut by an hour bound, every following reading that
continues the new run, up to ``refine_ms`` after the bound, re-estimates ``after_w`` from the
longer run and moves the difference across the bound: a correction ``(bound_ms, delta_wh)``,
``+delta`` for the window that ends at the bound and ``-delta`` for the one that starts there.
Totals never change; only the share either side of the bound does. ``refine_ms`` must be
shorter than the windows' grace, or a correction arrives after its window closed.

Gaps longer than ``Limits.max_gap_ms``: without a counter nothing is counted (a gap lowers
coverage, it never invents energy). With one, the delta is known in total but not in time: it
counts, without coverage, in a window that holds the whole gap (a 20-minute outage inside an
hour, any outage inside a day) and in no window the gap crosses.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.clock import HOUR_MS
from domain.energy_track import EnergyTrack, OpenSplit, PowerRun
from domain.rules.limits import AssetRuleState, Limits
from domain.telemetry import Reading

RUN_TOLERANCE = 0.05
"""A reading continues a run if its power is within this fraction of the run's first one."""
RUN_FLOOR_W = 0.05
"""... or within this many watts (standby power is small and noisy in relative terms)."""
MIN_POWER_SD_W = 0.001
"""The smallest standard deviation assumed for a power reading (a lamp reading 0 W)."""
REFINED_WINDOW_MS = HOUR_MS
"""Splits at bounds of this window (and of every multiple of it: days) are refined."""
DEFAULT_REFINE_MS = 300_000

Contribution = tuple[int, float, int]
"""``(window_start_ms, wh, covered_ms)`` of one window."""
Model = Literal["trapezoid", "steady", "step"]


class Interval(msgspec.Struct, frozen=True, gc=False):
    """The energy model of ``[t1_ms, t2_ms)``: ``total_wh``, and how it is spread in time.
    ``p1_w``/``p2_w``: the readings' powers (``trapezoid``) or the step's powers (``step``).
    Not ``observed``: a counter delta across a gap, known only in total; it counts in a window
    that holds the whole gap, with no coverage, and in no other."""

    t1_ms: int
    t2_ms: int
    total_wh: float
    model: Model
    p1_w: float = 0.0
    p2_w: float = 0.0
    observed: bool = True

    def energy_until(self, t_ms: int) -> float:
        """Energy of ``[t1_ms, t_ms)`` for ``t1_ms <= t_ms <= t2_ms``."""
        t1, span = self.t1_ms, self.t2_ms - self.t1_ms
        elapsed = t_ms - t1
        p1, p2 = self.p1_w, self.p2_w
        if self.model == "trapezoid":
            slope = (p2 - p1) / span
            return (p1 + 0.5 * slope * elapsed) * elapsed / HOUR_MS
        if self.model == "step" and p1 != p2:
            step_after = (self.total_wh * HOUR_MS - p2 * span) / (p1 - p2)
            if 0 <= step_after <= span:
                if elapsed <= step_after:
                    return p1 * elapsed / HOUR_MS
                return (p1 * step_after + p2 * (elapsed - step_after)) / HOUR_MS
        return self.total_wh * elapsed / span

    def split(self, window_ms: int) -> list[Contribution]:
        """``(window_start_ms, wh, covered_ms)`` for each epoch-aligned window of
        ``window_ms`` the interval touches, in time order; the parts sum to ``total_wh``."""
        t1_ms, t2_ms = self.t1_ms, self.t2_ms
        window_start_ms = t1_ms - t1_ms % window_ms
        if t2_ms <= window_start_ms + window_ms:
            return [(window_start_ms, self.total_wh, t2_ms - t1_ms if self.observed else 0)]
        if not self.observed:
            return []
        out: list[Contribution] = []
        start_ms = t1_ms
        done_wh = 0.0
        while start_ms < t2_ms:
            end_ms = min(window_start_ms + window_ms, t2_ms)
            upto_wh = self.total_wh if end_ms == t2_ms else self.energy_until(end_ms)
            out.append((window_start_ms, upto_wh - done_wh, end_ms - start_ms))
            done_wh = upto_wh
            start_ms = window_start_ms = end_ms
        return out


class EnergyStep(msgspec.Struct, frozen=True, gc=False):
    """What one reading does to an asset's energy: the interval it closes (if any), the
    corrections of an earlier split, and the track to keep in the asset's state."""

    track: EnergyTrack | None
    interval: Interval | None = None
    corrections: tuple[tuple[int, float], ...] = ()

    def contributions(self, window_ms: int) -> list[Contribution]:
        """The interval split into ``window_ms`` windows, then each correction whose bound is
        a bound of these windows (``covered_ms`` 0: it moves energy, not coverage)."""
        out = self.interval.split(window_ms) if self.interval is not None else []
        for bound_ms, delta_wh in self.corrections:
            if bound_ms % window_ms == 0 and delta_wh:
                out.append((bound_ms - window_ms, delta_wh, 0))
                out.append((bound_ms, -delta_wh, 0))
        return out


def trapezoid(t1_ms: int, p1_w: float, t2_ms: int, p2_w: float) -> Interval:
    """The estimated interval between two readings without a usable counter."""
    total_wh = (p1_w + p2_w) * 0.5 * (t2_ms - t1_ms) / HOUR_MS
    return Interval(t1_ms, t2_ms, total_wh, "trapezoid", p1_w, p2_w)


def energy_step(
    state: AssetRuleState | None,
    reading: Reading,
    limits: Limits,
    *,
    refine_ms: int = DEFAULT_REFINE_MS,
) -> EnergyStep:
    """The energy of the interval ``reading`` closes, given the asset's state *before* the
    rules apply it (see the module docstring). No interval for the first reading of an asset,
    for a duplicate or out-of-order one (the state's track is kept), and after a gap longer
    than ``limits.max_gap_ms`` without a counter (a gap lowers coverage, it never invents
    energy); with one, the gap's delta is an unobserved interval (see ``Interval``)."""
    if state is None:
        return EnergyStep(_started(reading))
    t1_ms, t2_ms = state.last_ts_ms, reading.ts_ms
    if t2_ms <= t1_ms:
        return EnergyStep(state.energy)
    e1_wh, e2_wh = state.last_energy_wh, reading.energy_wh
    if t2_ms - t1_ms > limits.max_gap_ms:
        if e1_wh is None or e2_wh is None or e2_wh < e1_wh:
            return EnergyStep(_started(reading))
        gap = Interval(t1_ms, t2_ms, e2_wh - e1_wh, "steady", observed=False)
        return EnergyStep(_started(reading), gap)
    track = state.energy
    run = (
        track.run
        if track is not None and e1_wh is not None and track.run.start_wh <= e1_wh
        else None
    )
    if e1_wh is None or e2_wh is None or e2_wh < e1_wh:
        if run is not None and e1_wh is not None and _continues(run, reading):
            # A reset inside a steady run: the run's power is better than two readings.
            power_w = run_power(run, t1_ms, e1_wh, limits)
            interval = Interval(t1_ms, t2_ms, power_w * (t2_ms - t1_ms) / HOUR_MS, "steady")
        else:
            interval = trapezoid(t1_ms, state.last_power_w, t2_ms, reading.power_w)
        return EnergyStep(_started(reading), interval)
    total_wh = e2_wh - e1_wh
    if run is not None and _continues(run, reading):
        assert track is not None
        grown = PowerRun(
            run.start_ms,
            run.start_wh,
            run.on,
            run.dim_level,
            run.first_w,
            run.sum_w + reading.power_w,
            run.sum_sq_w + reading.power_w * reading.power_w,
            run.readings + 1,
        )
        split, corrections = _refine(track.split, grown, reading, limits, refine_ms)
        return EnergyStep(
            EnergyTrack(grown, split), Interval(t1_ms, t2_ms, total_wh, "steady"), corrections
        )
    before_w = state.last_power_w if run is None else run_power(run, t1_ms, e1_wh, limits)
    interval = Interval(t1_ms, t2_ms, total_wh, "step", before_w, reading.power_w)
    bound_ms = t1_ms - t1_ms % REFINED_WINDOW_MS + REFINED_WINDOW_MS
    split = None
    if bound_ms < t2_ms:
        split = OpenSplit(
            t1_ms, t2_ms, total_wh, before_w, bound_ms, interval.energy_until(bound_ms)
        )
    return EnergyStep(_started(reading, split), interval)


def run_power(run: PowerRun, now_ms: int, now_wh: float, limits: Limits) -> float:
    """The power of ``run`` up to ``now_ms`` (counter ``now_wh``): the readings' mean and the
    counter's average, each weighted by the inverse of its variance. A reading's variance is
    the larger of the assumed accuracy's and the run's sample variance (noisier meters than
    configured, or power that wanders within the run); the counter's resolution is the larger
    of the configured one and the step its values show (whole numbers: 1 Wh)."""
    n = run.readings
    mean_w = run.sum_w / n
    elapsed_ms = now_ms - run.start_ms
    if elapsed_ms <= 0:
        return mean_w
    counter_w = (now_wh - run.start_wh) * HOUR_MS / elapsed_ms
    var_reading = max(limits.power_accuracy * abs(mean_w), MIN_POWER_SD_W) ** 2
    if n > 1:
        var_reading = max(var_reading, (run.sum_sq_w - n * mean_w * mean_w) / (n - 1))
    resolution_wh = max(
        limits.counter_resolution_wh,
        min(shown_resolution(run.start_wh), shown_resolution(now_wh)),
    )
    var_readings = var_reading / n
    var_counter = (resolution_wh * HOUR_MS / elapsed_ms) ** 2 / 6.0
    return (mean_w * var_counter + counter_w * var_readings) / (var_readings + var_counter)


def shown_resolution(value_wh: float) -> float:
    """The finest step ``value_wh`` shows: ``10 ** -d`` for its ``d`` decimals in shortest
    form (1.0 for a whole number); 0.0 (no information) in exponent form."""
    text = repr(value_wh)
    if "e" in text or "n" in text:  # 1e-05, 1e+16, inf, nan
        return 0.0
    return 10.0 ** -len(text.partition(".")[2].rstrip("0"))


def _started(reading: Reading, split: OpenSplit | None = None) -> EnergyTrack | None:
    """A new run at ``reading`` (``None`` when it has no counter: nothing to track)."""
    if reading.energy_wh is None:
        return None
    run = PowerRun(
        reading.ts_ms,
        reading.energy_wh,
        reading.on,
        reading.dim_level,
        reading.power_w,
        reading.power_w,
        reading.power_w * reading.power_w,
        1,
    )
    return EnergyTrack(run, split)


def _continues(run: PowerRun, reading: Reading) -> bool:
    return (
        reading.on == run.on
        and reading.dim_level == run.dim_level
        and abs(reading.power_w - run.first_w) <= RUN_TOLERANCE * abs(run.first_w) + RUN_FLOOR_W
    )


def _refine(
    split: OpenSplit | None, run: PowerRun, reading: Reading, limits: Limits, refine_ms: int
) -> tuple[OpenSplit | None, tuple[tuple[int, float], ...]]:
    """The split re-estimated with ``run`` (the run that started at its ``t2_ms``, now one
    reading longer) and the correction it makes; ``None`` once past ``refine_ms``."""
    if split is None or run.start_ms != split.t2_ms or reading.ts_ms > split.bound_ms + refine_ms:
        return None, ()
    assert reading.energy_wh is not None
    after_w = run_power(run, reading.ts_ms, reading.energy_wh, limits)
    refined = Interval(split.t1_ms, split.t2_ms, split.total_wh, "step", split.before_w, after_w)
    applied_wh = refined.energy_until(split.bound_ms)
    moved = OpenSplit(
        split.t1_ms, split.t2_ms, split.total_wh, split.before_w, split.bound_ms, applied_wh
    )
    return moved, ((split.bound_ms, applied_wh - split.applied_wh),)
