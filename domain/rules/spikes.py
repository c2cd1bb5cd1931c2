"""Spike rules of one asset: power above the rated threshold or above the learnt baseline of
its dim level. Every reading is judged against the threshold that applies at its own dim level,
so a lamp dimmed up after a one-reading blip does not keep an episode alive."""

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
