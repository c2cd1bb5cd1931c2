"""Per-asset detection rules as a pure state machine, and the usage integration rule.

Energy is integrated as a left rectangle: the power of a reading is held until the next reading
of the same asset. An interval longer than ``max_gap_ms`` contributes nothing: a gap lowers
coverage, it never invents energy. Spike excess energy uses the same rule.
"""

from __future__ import annotations

import msgspec

from domain.events import AssetState, DomainEvent, EnergySpike, Fault, UsageReport
from domain.telemetry import Reading

MS_PER_HOUR = 3_600_000
DEFAULT_MAX_GAP_MS = 300_000
DEFAULT_WINDOW_MS = 3_600_000
SPIKE_RULE = "power_above_threshold"


class Limits(msgspec.Struct, frozen=True, gc=False):
    """Rule parameters of one asset. The threshold's default (e.g. from rated power) is the
    caller's business; see ``domain.simulator.spike_threshold_w``."""

    spike_threshold_w: float
    max_gap_ms: int = DEFAULT_MAX_GAP_MS


class OpenFault(msgspec.Struct, frozen=True, gc=False):
    code: str
    opened_at_ms: int


class OpenSpike(msgspec.Struct, frozen=True, gc=False):
    """A spike in progress. ``threshold_w`` is fixed at the start of the episode."""

    started_at_ms: int
    peak_w: float
    excess_wh: float
    threshold_w: float


class AssetRuleState(msgspec.Struct, frozen=True, gc=False):
    """Everything the rules remember about one asset; msgpack/JSON serialisable for snapshots."""

    last_ts_ms: int
    last_power_w: float
    fault: OpenFault | None = None
    spike: OpenSpike | None = None


def step(
    state: AssetRuleState | None, reading: Reading, limits: Limits
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Apply one reading of an asset to its rule state.

    - A reading with ts_ms <= ``state.last_ts_ms`` (out of order or duplicate) is ignored:
      the same state object is returned with no events.
    - Fault: a reading with a ``fault_code`` opens a ``Fault`` (status ``open``) unless that code
      is already open. The episode ends at the first reading without that code (no code, or a
      different code, which opens a new episode in the same step): a ``cleared`` ``Fault`` with
      the same ``event_id`` and ``cleared_at_ms`` = that reading's ts is emitted first.
    - Spike: the first reading with ``power_w > threshold`` opens an episode; the first reading
      at or below closes it and emits one ``EnergySpike`` (start = ts of first reading above,
      end = ts of first reading back at/below, peak, excess Wh above the threshold). The threshold
      is fixed at the start of an episode; gaps longer than ``max_gap_ms`` add no excess.
    Ids in emitted events are the current reading's; an asset is assumed not to move during
    an episode. Events are returned in this order: cleared fault, opened fault, spike.
    """
    ts_ms = reading.ts_ms
    if state is not None and ts_ms <= state.last_ts_ms:
        return state, []
    events: list[DomainEvent] = []
    fault = state.fault if state is not None else None
    code = reading.fault_code
    if fault is not None and fault.code != code:
        events.append(_fault(reading, fault, cleared_at_ms=ts_ms))
        fault = None
    if code is not None and fault is None:
        fault = OpenFault(code, ts_ms)
        events.append(_fault(reading, fault, cleared_at_ms=None))

    power_w = reading.power_w
    spike = state.spike if state is not None else None
    if state is not None and spike is not None:
        excess_wh = spike.excess_wh
        duration_ms = ts_ms - state.last_ts_ms
        if duration_ms <= limits.max_gap_ms:
            excess_wh += (state.last_power_w - spike.threshold_w) * duration_ms / MS_PER_HOUR
        if power_w > spike.threshold_w:
            peak_w = max(spike.peak_w, power_w)
            spike = OpenSpike(spike.started_at_ms, peak_w, excess_wh, spike.threshold_w)
        else:
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
                    SPIKE_RULE,
                )
            )
            spike = None
    elif power_w > limits.spike_threshold_w:
        spike = OpenSpike(ts_ms, power_w, 0.0, limits.spike_threshold_w)
    return AssetRuleState(ts_ms, power_w, fault, spike), events


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
        return [(window_start_ms, prev_power_w * covered_ms / MS_PER_HOUR, covered_ms)]
    out: list[tuple[int, float, int]] = []
    start_ms = prev_ts_ms
    while start_ms < ts_ms:
        end_ms = min(window_end_ms, ts_ms)
        covered_ms = end_ms - start_ms
        out.append((window_start_ms, prev_power_w * covered_ms / MS_PER_HOUR, covered_ms))
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
