"""Per-asset detection rules as a pure state machine: ``step`` applies one reading.

Rule families live in their own modules: ``limits`` (parameters and state), ``faults``
(device codes, lamp failure, voltage, flicker, offline, retention), ``spikes`` (rated and
baseline), ``flood`` (the site's flood guard). Usage energy is ``domain.usage``.
"""

from __future__ import annotations

from domain.energy_track import EnergyTrack
from domain.events import AssetState, DomainEvent
from domain.rules.faults import (
    expire,
    flicker_code,
    lamp_code,
    lifecycle,
    mark_suppressed,
    offline_check,
    offline_deadline_ms,
    offline_on_reading,
    short_cycles,
    voltage_code,
)
from domain.rules.limits import (
    BASELINE_RULE,
    DEFAULT_COOLDOWN_MS,
    DEFAULT_MAX_GAP_MS,
    DEFAULT_RETENTION_MS,
    DEFAULT_WINDOW_MS,
    DERIVED_FAULT_CODES,
    EXPIRED,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
    OVER_VOLTAGE,
    SPIKE_RULE,
    UNDER_VOLTAGE,
    AssetRuleState,
    Limits,
    OpenFault,
    OpenSpike,
    WrittenState,
)
from domain.rules.spikes import dim_bucket, learn, spike_step, spike_threshold
from domain.telemetry import Reading


def step(
    state: AssetRuleState | None,
    reading: Reading,
    limits: Limits,
    *,
    energy: EnergyTrack | None = None,
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Apply one reading of an asset to its rule state.

    - A reading with ts_ms <= ``state.last_ts_ms`` (out of order or duplicate) is ignored:
      the same state object is returned with no events.
    - Offline: an open offline fault is cleared at this reading (``faults.offline_on_reading``).
    - Fault slots (``faults.lifecycle``): a device ``fault_code``, lamp failure, over/under
      voltage and flicker each open a ``Fault`` when their code appears and clear it at the
      first reading without it (``cleared`` version, same ``event_id``); a re-opening within
      ``cooldown_ms`` continues the cleared fault (``occurrences + 1``). A lamp failure is not
      derived from a reading that carries a device fault code: the device's diagnosis comes
      first.
    - Spike: ``spikes.spike_step`` (per-reading thresholds, ``min_spike_readings``).
    Ids in emitted events are the current reading's; an asset is assumed not to move during
    an episode. Events are returned in this order: offline, device fault, lamp failure,
    voltage, flicker, spike. ``energy`` is kept in the new state as is: the track
    ``domain.energy.energy_step`` returned for this reading.
    """
    ts_ms = reading.ts_ms
    if state is not None and ts_ms <= state.last_ts_ms:
        return state, []
    events: list[DomainEvent] = []
    cooldown_ms = limits.cooldown_ms
    offline_on_reading(state, reading, limits, events)
    fault = lifecycle(
        reading, state.fault if state else None, reading.fault_code, cooldown_ms, events
    )
    lamp = lifecycle(
        reading, state.lamp if state else None, lamp_code(reading, limits), cooldown_ms, events
    )
    voltage = lifecycle(
        reading,
        state.voltage if state else None,
        voltage_code(reading, limits),
        cooldown_ms,
        events,
    )
    on_since_ms, cycles = short_cycles(state, reading, limits)
    flicker = lifecycle(
        reading,
        state.flicker if state else None,
        flicker_code(cycles, limits),
        cooldown_ms,
        events,
    )
    spike = spike_step(state, reading, limits, events)
    baseline = state.baseline if state is not None else {}
    if (
        limits.baseline_factor is not None
        and spike is None
        and reading.on
        and reading.fault_code is None
        and _healthy(lamp)
        and _healthy(voltage)
    ):
        baseline = learn(baseline, reading, limits)
    return AssetRuleState(
        last_ts_ms=ts_ms,
        last_power_w=reading.power_w,
        fault=fault,
        spike=spike,
        site_id=reading.site_id,
        building_id=reading.building_id,
        room_id=reading.room_id,
        asset_id=reading.asset_id,
        last_on=reading.on,
        lamp=lamp,
        voltage=voltage,
        flicker=flicker,
        # An open offline fault was cleared by this reading (offline_on_reading's event).
        offline=None,
        baseline=baseline,
        on_since_ms=on_since_ms,
        short_cycles_ms=cycles,
        last_energy_wh=reading.energy_wh,
        energy=energy,
        written=state.written if state is not None else None,
    ), events


def _healthy(slot: OpenFault | None) -> bool:
    return slot is None or slot.cleared_at_ms is not None


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


__all__ = [
    "BASELINE_RULE",
    "DEFAULT_COOLDOWN_MS",
    "DEFAULT_MAX_GAP_MS",
    "DEFAULT_RETENTION_MS",
    "DEFAULT_WINDOW_MS",
    "DERIVED_FAULT_CODES",
    "EXPIRED",
    "FLICKER",
    "LAMP_FAILURE",
    "OFFLINE",
    "OVER_VOLTAGE",
    "SPIKE_RULE",
    "UNDER_VOLTAGE",
    "AssetRuleState",
    "Limits",
    "OpenFault",
    "OpenSpike",
    "WrittenState",
    "asset_state",
    "dim_bucket",
    "expire",
    "mark_suppressed",
    "offline_check",
    "offline_deadline_ms",
    "spike_threshold",
    "step",
]
