"""Per-asset detection rules as a pure state machine, and the usage integration rule.

Energy is integrated as a left rectangle: the power of a reading is held until the next reading
of the same asset. An interval longer than ``max_gap_ms`` contributes nothing: a gap lowers
coverage, it never invents energy. Spike excess energy uses the same rule.
"""

from __future__ import annotations

import msgspec

from core.clock import HOUR_MS
from domain.events import AssetState, DomainEvent, EnergySpike, Fault, UsageReport
from domain.telemetry import Reading

DEFAULT_MAX_GAP_MS = 300_000
DEFAULT_WINDOW_MS = 3_600_000
SPIKE_RULE = "power_above_threshold"
BASELINE_RULE = "power_above_baseline"

# Fault codes of the derived faults (device codes are whatever the device sends).
LAMP_FAILURE = "lamp_failure"
OVER_VOLTAGE = "over_voltage"
UNDER_VOLTAGE = "under_voltage"
FLICKER = "flicker"
OFFLINE = "offline"
DERIVED_FAULT_CODES = frozenset({LAMP_FAILURE, OVER_VOLTAGE, UNDER_VOLTAGE, FLICKER, OFFLINE})


class Limits(msgspec.Struct, frozen=True, gc=False):
    """Rule parameters of one asset (``domain.registry.limits_of`` builds them from the registry).

    Every rule beyond device fault codes and the rated-power spike is off unless its parameter
    is set, so ``Limits(threshold)`` keeps the original two rules.

    - spikes: ``spike_threshold_w`` (rated power times tolerance); an episode is reported only
      if it lasted at least ``min_spike_ms`` (first reading above to first reading back).
    - baseline: with ``baseline_factor``, an EWMA of power per (``dim_level`` bucket of
      ``dim_bucket_pct``), learnt from healthy readings while on, gives a second threshold
      ``max(ewma * factor, ewma + baseline_min_excess_w)`` once ``baseline_warmup`` readings
      were learnt; the lower of the two thresholds applies.
    - lamp failure: with ``lamp_current_fraction`` and ``rated_w``: on, ``dim_level >=
      lamp_min_dim_pct`` and ``current_a`` below that fraction of the expected current
      ``rated_w * dim_level / 100 / nominal_voltage_v``.
    - voltage: with ``voltage_band`` (a fraction): outside ``nominal_voltage_v * (1 +- band)``.
    - flicker: with ``flicker_toggles``: at least that many on/off changes in the last
      ``flicker_window_ms`` (``(ts - window, ts]``).
    - offline: with ``offline_after_ms``: no reading for that long.
    """

    spike_threshold_w: float
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    min_spike_ms: int = 0
    baseline_factor: float | None = None
    baseline_min_excess_w: float = 2.0
    baseline_alpha: float = 0.1
    baseline_warmup: int = 10
    dim_bucket_pct: int = 5
    rated_w: float | None = None
    lamp_current_fraction: float | None = None
    lamp_min_dim_pct: int = 10
    nominal_voltage_v: float = 230.0
    voltage_band: float | None = None
    flicker_toggles: int | None = None
    flicker_window_ms: int = 600_000
    offline_after_ms: int | None = None


class OpenFault(msgspec.Struct, frozen=True, gc=False):
    code: str
    opened_at_ms: int


class OpenSpike(msgspec.Struct, frozen=True, gc=False):
    """A spike in progress. ``threshold_w`` and ``rule`` are fixed at the start of the episode."""

    started_at_ms: int
    peak_w: float
    excess_wh: float
    threshold_w: float
    rule: str = SPIKE_RULE


class AssetRuleState(msgspec.Struct, frozen=True, gc=False):
    """Everything the rules remember about one asset; msgpack/JSON serialisable for snapshots.

    Fields after ``spike`` have defaults so snapshots written before they existed still load.
    The ids are those of the last reading, for events raised without one (``offline_check``).
    ``baseline`` maps a dim bucket to ``(ewma_w, readings learnt)``.
    """

    last_ts_ms: int
    last_power_w: float
    fault: OpenFault | None = None
    spike: OpenSpike | None = None
    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    asset_id: str = ""
    last_on: bool | None = None
    toggles_ms: tuple[int, ...] = ()
    lamp: OpenFault | None = None
    voltage: OpenFault | None = None
    flicker: OpenFault | None = None
    offline: OpenFault | None = None
    baseline: dict[int, tuple[float, int]] = msgspec.field(default_factory=dict)


def step(
    state: AssetRuleState | None, reading: Reading, limits: Limits
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Apply one reading of an asset to its rule state.

    - A reading with ts_ms <= ``state.last_ts_ms`` (out of order or duplicate) is ignored:
      the same state object is returned with no events.
    - Offline: an open offline fault is cleared at this reading. A gap of at least
      ``offline_after_ms`` that no ``offline_check`` saw is opened and cleared here, with the
      same ``opened_at_ms`` (last reading + ``offline_after_ms``) that ``offline_check`` uses.
    - Fault: a reading with a ``fault_code`` opens a ``Fault`` (status ``open``) unless that code
      is already open. The episode ends at the first reading without that code (no code, or a
      different code, which opens a new episode in the same step): a ``cleared`` ``Fault`` with
      the same ``event_id`` and ``cleared_at_ms`` = that reading's ts is emitted first.
      Lamp failure, voltage and flicker have the same lifecycle, each in its own slot, with the
      codes ``lamp_failure``, ``over_voltage``/``under_voltage`` and ``flicker``. A lamp failure
      is not derived from a reading that carries a device fault code: the device's own
      diagnosis comes first.
    - Spike: the first reading with ``power_w`` above the threshold (rated or baseline, see
      ``spike_threshold``) opens an episode; the first reading at or below the episode's
      threshold closes it and emits one ``EnergySpike`` (start = ts of first reading above,
      end = ts of first reading back at/below, peak, excess Wh above the threshold, ``rule``)
      if it lasted at least ``min_spike_ms``. The threshold is fixed at the start of an
      episode; gaps longer than ``max_gap_ms`` add no excess.
    Ids in emitted events are the current reading's; an asset is assumed not to move during
    an episode. Events are returned in this order: offline, cleared fault, opened fault,
    lamp failure, voltage, flicker, spike.
    """
    ts_ms = reading.ts_ms
    if state is not None and ts_ms <= state.last_ts_ms:
        return state, []
    events: list[DomainEvent] = []
    _offline_on_reading(state, reading, limits, events)
    fault = _lifecycle(reading, state.fault if state else None, reading.fault_code, events)
    lamp = _lifecycle(reading, state.lamp if state else None, _lamp_code(reading, limits), events)
    voltage = _lifecycle(
        reading, state.voltage if state else None, _voltage_code(reading, limits), events
    )
    toggles_ms = _toggles(state, reading, limits)
    flicker_code = (
        FLICKER
        if limits.flicker_toggles is not None and len(toggles_ms) >= limits.flicker_toggles
        else None
    )
    flicker = _lifecycle(reading, state.flicker if state else None, flicker_code, events)
    spike = _spike(state, reading, limits, events)
    baseline = state.baseline if state is not None else {}
    if (
        limits.baseline_factor is not None
        and spike is None
        and reading.on
        and reading.fault_code is None
        and lamp is None
        and voltage is None
    ):
        baseline = _learn(baseline, reading, limits)
    return AssetRuleState(
        ts_ms,
        reading.power_w,
        fault,
        spike,
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        reading.on,
        toggles_ms,
        lamp,
        voltage,
        flicker,
        None,
        baseline,
    ), events


def offline_check(
    state: AssetRuleState, now_ms: int, limits: Limits
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Open the offline fault of an asset whose last reading is ``offline_after_ms`` or more
    before ``now_ms`` (the shard's watermark, or its idle clock when the shard is quiet).

    ``opened_at_ms`` is ``last_ts_ms + offline_after_ms`` whatever ``now_ms`` is, so calling
    this late, often or after a replay gives the same event. The next reading clears it
    (``step``). Returns the same state object and no events when nothing opens.
    """
    after_ms = limits.offline_after_ms
    if after_ms is None or state.offline is not None:
        return state, []
    opened_at_ms = state.last_ts_ms + after_ms
    if now_ms < opened_at_ms:
        return state, []
    offline = OpenFault(OFFLINE, opened_at_ms)
    event = Fault(
        state.site_id, state.building_id, state.room_id, state.asset_id, OFFLINE, opened_at_ms
    )
    return msgspec.structs.replace(state, offline=offline), [event]


def offline_deadline_ms(state: AssetRuleState, limits: Limits) -> int | None:
    """When ``offline_check`` would open a fault for this state (``None``: never or open)."""
    if limits.offline_after_ms is None or state.offline is not None:
        return None
    return state.last_ts_ms + limits.offline_after_ms


def spike_threshold(
    state: AssetRuleState | None, reading: Reading, limits: Limits
) -> tuple[float, str]:
    """The threshold a new spike episode would start with at ``reading``, and its rule: the
    rated threshold, or the baseline's for the reading's dim bucket when that is lower."""
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


def _learn(
    baseline: dict[int, tuple[float, int]], reading: Reading, limits: Limits
) -> dict[int, tuple[float, int]]:
    bucket = dim_bucket(reading.dim_level, limits)
    learnt = baseline.get(bucket)
    if learnt is None:
        updated = (reading.power_w, 1)
    else:
        ewma_w, count = learnt
        updated = (ewma_w + limits.baseline_alpha * (reading.power_w - ewma_w), count + 1)
    # Copy on write: the state before the step stays as it was.
    out = dict(baseline)
    out[bucket] = updated
    return out


def _offline_on_reading(
    state: AssetRuleState | None, reading: Reading, limits: Limits, events: list[DomainEvent]
) -> None:
    if state is None:
        return
    offline = state.offline
    if offline is None:
        after_ms = limits.offline_after_ms
        if after_ms is None or reading.ts_ms - state.last_ts_ms < after_ms:
            return
        offline = OpenFault(OFFLINE, state.last_ts_ms + after_ms)
        events.append(_fault(reading, offline, cleared_at_ms=None))
    events.append(_fault(reading, offline, cleared_at_ms=reading.ts_ms))


def _lifecycle(
    reading: Reading, fault: OpenFault | None, code: str | None, events: list[DomainEvent]
) -> OpenFault | None:
    """One fault slot: clear the open fault when the reading's code differs, open one for the
    reading's code when none is open. Returns the slot's new content."""
    if fault is not None and fault.code != code:
        events.append(_fault(reading, fault, cleared_at_ms=reading.ts_ms))
        fault = None
    if code is not None and fault is None:
        fault = OpenFault(code, reading.ts_ms)
        events.append(_fault(reading, fault, cleared_at_ms=None))
    return fault


def _lamp_code(reading: Reading, limits: Limits) -> str | None:
    fraction, rated_w = limits.lamp_current_fraction, limits.rated_w
    if (
        fraction is None
        or rated_w is None
        or not reading.on
        or reading.fault_code is not None
        or reading.dim_level < limits.lamp_min_dim_pct
    ):
        return None
    expected_a = rated_w * reading.dim_level / 100 / limits.nominal_voltage_v
    return LAMP_FAILURE if reading.current_a < fraction * expected_a else None


def _voltage_code(reading: Reading, limits: Limits) -> str | None:
    band = limits.voltage_band
    if band is None:
        return None
    if reading.voltage_v > limits.nominal_voltage_v * (1.0 + band):
        return OVER_VOLTAGE
    if reading.voltage_v < limits.nominal_voltage_v * (1.0 - band):
        return UNDER_VOLTAGE
    return None


def _toggles(state: AssetRuleState | None, reading: Reading, limits: Limits) -> tuple[int, ...]:
    """On/off changes within ``(ts - flicker_window_ms, ts]``, this reading's included."""
    if limits.flicker_toggles is None or state is None:
        return ()
    cutoff_ms = reading.ts_ms - limits.flicker_window_ms
    kept = tuple(t for t in state.toggles_ms if t > cutoff_ms)
    if state.last_on is not None and state.last_on != reading.on:
        return (*kept, reading.ts_ms)
    return kept


def _spike(
    state: AssetRuleState | None, reading: Reading, limits: Limits, events: list[DomainEvent]
) -> OpenSpike | None:
    ts_ms = reading.ts_ms
    power_w = reading.power_w
    spike = state.spike if state is not None else None
    if state is None or spike is None:
        threshold_w, rule = spike_threshold(state, reading, limits)
        if power_w > threshold_w:
            return OpenSpike(ts_ms, power_w, 0.0, threshold_w, rule)
        return None
    excess_wh = spike.excess_wh
    duration_ms = ts_ms - state.last_ts_ms
    if duration_ms <= limits.max_gap_ms:
        excess_wh += (state.last_power_w - spike.threshold_w) * duration_ms / HOUR_MS
    if power_w > spike.threshold_w:
        peak_w = max(spike.peak_w, power_w)
        return OpenSpike(spike.started_at_ms, peak_w, excess_wh, spike.threshold_w, spike.rule)
    if ts_ms - spike.started_at_ms >= limits.min_spike_ms:
        events.append(
            EnergySpike(
                reading.site_id,
                reading.building_id,
                reading.room_id,
                reading.asset_id,
                spike.started_at_ms,
                ts_ms,
                spike.peak_w,
                spike.threshold_w,
                excess_wh,
                spike.rule,
            )
        )
    return None


def _fault(reading: Reading, fault: OpenFault, cleared_at_ms: int | None) -> Fault:
    return Fault(
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        fault.code,
        fault.opened_at_ms,
        "open" if cleared_at_ms is None else "cleared",
        cleared_at_ms,
    )


def usage_contributions(
    prev_ts_ms: int,
    prev_power_w: float,
    ts_ms: int,
    max_gap_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> list[tuple[int, float, int]]:
    """Energy of ``[prev_ts_ms, ts_ms)`` at constant ``prev_power_w``, split at window bounds.

    Returns ``(window_start_ms, wh, covered_ms)`` per window touched, in time order, with
    ``wh = prev_power_w * covered_ms / 3_600_000`` (windows are epoch-aligned multiples of
    ``window_ms``). Empty if ``ts_ms <= prev_ts_ms`` or the interval is longer than
    ``max_gap_ms``. Summing these per window in time order gives the usage of the window.
    """
    if ts_ms <= prev_ts_ms or ts_ms - prev_ts_ms > max_gap_ms:
        return []
    window_start_ms = prev_ts_ms - prev_ts_ms % window_ms
    window_end_ms = window_start_ms + window_ms
    if ts_ms <= window_end_ms:
        covered_ms = ts_ms - prev_ts_ms
        return [(window_start_ms, prev_power_w * covered_ms / HOUR_MS, covered_ms)]
    out: list[tuple[int, float, int]] = []
    start_ms = prev_ts_ms
    while start_ms < ts_ms:
        end_ms = min(window_end_ms, ts_ms)
        covered_ms = end_ms - start_ms
        out.append((window_start_ms, prev_power_w * covered_ms / HOUR_MS, covered_ms))
        start_ms = window_start_ms = end_ms
        window_end_ms = window_start_ms + window_ms
    return out


def usage_since_last(
    state: AssetRuleState | None,
    reading: Reading,
    limits: Limits,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> list[tuple[int, float, int]]:
    """``usage_contributions`` of the interval that ``reading`` closes, given the state *before*
    ``step`` applies it. Empty for the first reading of an asset and for ignored readings."""
    if state is None:
        return []
    return usage_contributions(
        state.last_ts_ms, state.last_power_w, reading.ts_ms, limits.max_gap_ms, window_ms
    )


def usage_report(
    *,
    site_id: str,
    building_id: str,
    room_id: str,
    asset_id: str,
    window_start_ms: int,
    window_ms: int,
    wh: float,
    covered_ms: int,
) -> UsageReport:
    """The asset-level report of one window from its summed contributions (keyword-only:
    eight arguments, several of them ints, are too easy to swap by position)."""
    return UsageReport(
        site_id,
        building_id,
        room_id,
        asset_id,
        window_start_ms,
        window_start_ms + window_ms,
        wh / 1000.0,
        covered_ms,
        covered_ms / window_ms,
    )


def asset_state(reading: Reading) -> AssetState:
    """The current-state event of an asset after ``reading``."""
    return AssetState(
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        reading.ts_ms,
        reading.power_w,
        reading.on,
        reading.dim_level,
        reading.fault_code,
    )
