"""Spike rules of one asset: power above the rated threshold or above the learnt baseline of
its dim level. Every reading is judged against the threshold that applies at its own dim level,
so a lamp dimmed up after a one-reading blip does not keep an episode alive.

An episode is confirmed by a reading (``spike_step``) or, sooner, by the shard's event clock
(``spike_due_ms``, ``clock_confirm``): once it has its readings, the rule's time may pass
between two readings, and the clock then says so before the next one comes."""

from __future__ import annotations

import msgspec

from core.clock import HOUR_MS
from domain.events import DomainEvent, EnergySpike
from domain.rules.limits import (
    BASELINE_RULE,
    SPIKE_RULE,
    AssetRuleState,
    Baseline,
    Limits,
    OpenSpike,
    baseline_of,
)
from domain.telemetry import Reading


def spike_threshold(
    state: AssetRuleState | None, reading: Reading, limits: Limits
) -> tuple[float, str]:
    """The threshold that applies at ``reading``, and its rule: the rated threshold, or the
    baseline's for the reading's dim bucket when that is lower."""
    rated_w = limits.spike_threshold_w
    factor = limits.baseline_factor
    if factor is None or state is None or not reading.on:
        return rated_w, SPIKE_RULE
    learnt = state.baseline.get(dim_bucket(reading.dim_level, limits))
    if learnt is None or learnt[1] < limits.baseline_warmup:
        return rated_w, SPIKE_RULE
    ewma_w = learnt[0]
    baseline_w = max(ewma_w * factor, ewma_w + limits.baseline_min_excess_w)
    if baseline_w < rated_w:
        return baseline_w, BASELINE_RULE
    return rated_w, SPIKE_RULE


def dim_bucket(dim_level: int, limits: Limits) -> int:
    """The lowest dim level of the bucket ``dim_level`` falls in."""
    return dim_level - dim_level % limits.dim_bucket_pct


def learn(
    baseline: Baseline | dict[int, tuple[float, int]], reading: Reading, limits: Limits
) -> Baseline:
    """The baseline with ``reading`` learnt into its dim bucket (a copy: states are values)."""
    bucket = dim_bucket(reading.dim_level, limits)
    learnt = baseline.get(bucket)
    if learnt is None:
        updated = (reading.power_w, 1)
    else:
        ewma_w, count = learnt
        updated = (ewma_w + limits.baseline_alpha * (reading.power_w - ewma_w), count + 1)
    return baseline_of(baseline).with_bucket(bucket, *updated)


def spike_step(
    state: AssetRuleState | None, reading: Reading, limits: Limits, events: list[DomainEvent]
) -> OpenSpike | None:
    """The spike episode after ``reading``.

    A reading above its own threshold opens an episode or extends it. The episode is
    confirmed at the first reading above at which at least ``min_spike_readings`` readings
    were above and ``min_spike_ms`` passed since its start: the open ``EnergySpike`` is
    emitted then (peak and excess so far, ``ended_at_ms`` None), once. The first reading at
    or below its own threshold ends the episode and emits the closed ``EnergySpike`` (end:
    that reading; peak; excess Wh above the threshold of each interval's first reading, gaps
    longer than ``max_gap_ms`` adding nothing; threshold and rule of the first reading) if
    it was confirmed or now qualifies (readings, and ``min_spike_ms`` to the end reading)."""
    ts_ms = reading.ts_ms
    power_w = reading.power_w
    threshold_w, rule = spike_threshold(state, reading, limits)
    spike = state.spike if state is not None else None
    if state is None or spike is None:
        if power_w > threshold_w:
            return _confirm(
                OpenSpike(ts_ms, power_w, 0.0, threshold_w, rule, 1, threshold_w),
                reading,
                limits,
                events,
            )
        return None
    excess_wh = spike.excess_wh
    duration_ms = ts_ms - state.last_ts_ms
    held_threshold_w = spike.last_threshold_w or spike.threshold_w
    if duration_ms <= limits.max_gap_ms:
        excess_wh += max(state.last_power_w - held_threshold_w, 0.0) * duration_ms / HOUR_MS
    if power_w > threshold_w:
        return _confirm(
            OpenSpike(
                spike.started_at_ms,
                max(spike.peak_w, power_w),
                excess_wh,
                spike.threshold_w,
                spike.rule,
                spike.readings + 1,
                threshold_w,
                spike.confirmed,
            ),
            reading,
            limits,
            events,
        )
    if spike.confirmed or (
        spike.readings >= limits.min_spike_readings
        and ts_ms - spike.started_at_ms >= limits.min_spike_ms
    ):
        ended = msgspec.structs.replace(spike, excess_wh=excess_wh)
        events.append(spike_of(reading, ended, ended_at_ms=ts_ms))
    return None


def spike_due_ms(state: AssetRuleState | None, limits: Limits, *, lag_ms: int = 0) -> int | None:
    """The event time at which the shard's clock confirms the spike of ``state`` (see
    ``clock_confirm``), or None when only a reading may confirm it.

    The end rule already holds the power of a reading until the next one (sample and hold: an
    episode lasts until the reading that ends it). So an open, unconfirmed episode with its
    ``min_spike_readings`` whose power held above from its last reading to ``started_at_ms +
    min_spike_ms`` (the due time) qualifies as the next reading would confirm it, and the
    clock reaching the due time confirms it then, instead of up to one reporting interval
    later. How far the hold is trusted:

    - at most ``hold = min(spike_hold_ms, max_gap_ms)`` from the last reading to the due time.
      A device that reports on time has a reading within the hold before the due time; one
      whose last reading is older has missed a report, which may be on its way and say the
      power fell (or never come: a device gone silent), so its next reading decides. A silent
      device is never claimed for longer than the hold past its last reading.
    - only when the last reading was not late: ``lag_ms`` (its arrival minus its timestamp)
      at most the hold. Readings that come late (a gateway's buffered upload, a device whose
      clock is slow) say that the ones after them may be as late: the reading decides.
    - the clock is the shard's (readings stamped ahead of their arrival are bounded by the
      skew allowance; one device cannot move it past what arrivals support).

    On in-order delivery the asset's next reading comes after the clock passed the due time,
    so whatever it says the end rule reports the episode with the same start: the clock
    claims nothing the end rule would not report. Out of order, a reading stamped before the
    due time that reaches the shard after a newer reading took the clock past it (delivered
    later than the due time minus its own time, behind the others) can still end a claimed
    episode early: the closed version then reports that shorter episode. The due time depends
    only on the asset's readings and their arrival times, not on when the clock is checked."""
    if state is None:
        return None
    spike = state.spike
    if spike is None or spike.confirmed or spike.readings < limits.min_spike_readings:
        return None
    hold_ms = min(limits.spike_hold_ms, limits.max_gap_ms)
    due_ms = spike.started_at_ms + limits.min_spike_ms
    if due_ms - state.last_ts_ms > hold_ms or lag_ms > hold_ms:
        return None
    return due_ms


def clock_confirm(
    state: AssetRuleState, clock_ms: int, limits: Limits
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Confirm the spike of ``state`` on the event clock: once ``clock_ms`` reaches its due
    time (``spike_due_ms`` without lag: the caller checked the last reading's when it came),
    the open ``EnergySpike`` the reading path would emit (same identity, ``status`` open,
    revision 1; peak and excess of the readings so far) and the state with the spike
    confirmed, so no reading emits it again. Else the same state object and no events.

    The caller checks after each batch and, before applying an asset's next reading, whether
    the clock had passed the due time by then: the open version (peak and excess of the
    readings before that one) is then the same wherever the batches end."""
    due_ms = spike_due_ms(state, limits)
    spike = state.spike
    if due_ms is None or spike is None or clock_ms < due_ms:
        return state, []
    confirmed = msgspec.structs.replace(spike, confirmed=True)
    return msgspec.structs.replace(state, spike=confirmed), [
        spike_of(state, spike, ended_at_ms=None)
    ]


def _confirm(
    spike: OpenSpike, reading: Reading, limits: Limits, events: list[DomainEvent]
) -> OpenSpike:
    """``spike`` after a reading above: confirmed (its open event emitted) when it qualifies."""
    if spike.confirmed or not (
        spike.readings >= limits.min_spike_readings
        and reading.ts_ms - spike.started_at_ms >= limits.min_spike_ms
    ):
        return spike
    events.append(spike_of(reading, spike, ended_at_ms=None))
    return msgspec.structs.replace(spike, confirmed=True)


def spike_of(
    ids: Reading | AssetRuleState, spike: OpenSpike, *, ended_at_ms: int | None
) -> EnergySpike:
    """The event of an episode: open while ``ended_at_ms`` is None, else closed there; with
    the ids of a reading (or of a state)."""
    return EnergySpike(
        ids.site_id,
        ids.building_id,
        ids.room_id,
        ids.asset_id,
        spike.started_at_ms,
        ended_at_ms,
        spike.peak_w,
        spike.threshold_w,
        spike.excess_wh,
        spike.rule,
        status="open" if ended_at_ms is None else "closed",
    )
