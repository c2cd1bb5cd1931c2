"""Fault rules of one asset: device codes, lamp failure, voltage, flicker (each a fault slot
with a cool-down), offline, and the retirement of an asset's state after its retention."""

from __future__ import annotations

import msgspec

from domain.events import DomainEvent, Fault
from domain.rules.limits import (
    EXPIRED,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
    OVER_VOLTAGE,
    UNDER_VOLTAGE,
    AssetRuleState,
    Limits,
    OpenFault,
)
from domain.rules.spikes import spike_of
from domain.telemetry import Reading

_SLOTS = ("fault", "lamp", "voltage", "flicker", "offline")


def lifecycle(
    reading: Reading,
    slot: OpenFault | None,
    code: str | None,
    cooldown_ms: int,
    events: list[DomainEvent],
) -> OpenFault | None:
    """One fault slot at ``reading``, whose code is ``code`` (None: healthy).

    An open fault of another code (or none) is cleared at the reading. A code opens a fault,
    unless the slot holds a fault of that code cleared at most ``cooldown_ms`` ago: then that
    fault re-opens (same identity, ``occurrences + 1``). A cleared fault stays in the slot for
    the cool-down, then the slot empties. Returns the slot's new content."""
    ts_ms = reading.ts_ms
    if slot is not None:
        if slot.cleared_at_ms is None:
            if slot.code == code:
                return slot
            slot = msgspec.structs.replace(slot, cleared_at_ms=ts_ms)
            events.append(fault_of(reading, slot))
        elif ts_ms - slot.cleared_at_ms > cooldown_ms:
            slot = None
    if code is None:
        return slot
    if slot is not None and slot.code == code:
        slot = OpenFault(code, slot.opened_at_ms, None, slot.occurrences + 1, slot.suppressed)
    else:
        slot = OpenFault(code, ts_ms)
    events.append(fault_of(reading, slot))
    return slot


def fault_of(
    reading: Reading | AssetRuleState, slot: OpenFault, reason: str | None = None
) -> Fault:
    """The event of a slot's current version, with the ids of a reading (or of a state)."""
    return Fault(
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        slot.code,
        slot.opened_at_ms,
        "open" if slot.cleared_at_ms is None else "cleared",
        slot.cleared_at_ms,
        slot.occurrences,
        slot.suppressed,
        reason=reason,
    )


def lamp_code(reading: Reading, limits: Limits) -> str | None:
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


def voltage_code(reading: Reading, limits: Limits) -> str | None:
    band = limits.voltage_band
    if band is None:
        return None
    if reading.voltage_v > limits.nominal_voltage_v * (1.0 + band):
        return OVER_VOLTAGE
    if reading.voltage_v < limits.nominal_voltage_v * (1.0 - band):
        return UNDER_VOLTAGE
    return None


def short_cycles(
    state: AssetRuleState | None, reading: Reading, limits: Limits
) -> tuple[int | None, tuple[int, ...]]:
    """``(on_since_ms, short_cycles_ms)`` after ``reading``: the start of the current on-period
    and the ends of on-periods shorter than ``flicker_max_on_ms`` within
    ``(ts - flicker_window_ms, ts]``. An on-period that began before the asset was first seen
    has no known start and never counts."""
    if limits.flicker_toggles is None or state is None:
        return None, ()
    ts_ms = reading.ts_ms
    cutoff_ms = ts_ms - limits.flicker_window_ms
    cycles = tuple(t for t in state.short_cycles_ms if t > cutoff_ms)
    on_since_ms = state.on_since_ms
    if reading.on:
        if state.last_on is False:
            on_since_ms = ts_ms
        return on_since_ms, cycles
    if state.last_on and on_since_ms is not None and ts_ms - on_since_ms < limits.flicker_max_on_ms:
        cycles = (*cycles, ts_ms)
    return None, cycles


def flicker_code(cycles: tuple[int, ...], limits: Limits) -> str | None:
    toggles = limits.flicker_toggles
    return FLICKER if toggles is not None and len(cycles) >= toggles else None


def offline_on_reading(
    state: AssetRuleState | None, reading: Reading, limits: Limits, events: list[DomainEvent]
) -> None:
    """Clear an open offline fault at ``reading``; a gap of at least ``offline_after_ms`` that
    no ``offline_check`` saw is opened and cleared here, dated as ``offline_check`` would."""
    if state is None:
        return
    offline = state.offline
    if offline is None:
        after_ms = limits.offline_after_ms
        if after_ms is None or reading.ts_ms - state.last_ts_ms < after_ms:
            return
        offline = OpenFault(OFFLINE, state.last_ts_ms + after_ms)
        events.append(fault_of(reading, offline))
    events.append(fault_of(reading, msgspec.structs.replace(offline, cleared_at_ms=reading.ts_ms)))


def offline_check(
    state: AssetRuleState, now_ms: int, limits: Limits
) -> tuple[AssetRuleState, list[DomainEvent]]:
    """Open the offline fault of an asset whose last reading is ``offline_after_ms`` or more
    before ``now_ms`` (the shard's watermark, or its idle clock when the shard is quiet).

    ``opened_at_ms`` is ``last_ts_ms + offline_after_ms`` whatever ``now_ms`` is, so calling
    this late, often or after a replay gives the same event. The next reading clears it
    (``step``). Returns the same state object and no events when nothing opens.
    """
    opened_at_ms = offline_deadline_ms(state, limits)
    if opened_at_ms is None or now_ms < opened_at_ms:
        return state, []
    offline = OpenFault(OFFLINE, opened_at_ms)
    return msgspec.structs.replace(state, offline=offline), [fault_of(state, offline)]


def offline_deadline_ms(state: AssetRuleState, limits: Limits) -> int | None:
    """When ``offline_check`` would open a fault for this state (``None``: never or open)."""
    if limits.offline_after_ms is None or state.offline is not None:
        return None
    return state.last_ts_ms + limits.offline_after_ms


def expire(
    state: AssetRuleState, now_ms: int, limits: Limits
) -> tuple[AssetRuleState | None, list[DomainEvent]]:
    """Retire an asset without readings for ``retention_ms`` of event time: ``None`` (forget
    it) and every open fault cleared at ``last_ts_ms + retention_ms`` with reason ``expired``
    (an offline fault is opened first if it was never checked). A spike in progress whose
    open version was raised is closed at ``last_ts_ms``, the last reading seen (its peak and
    excess so far), so it never stays open; an unconfirmed one is dropped. Before the
    retention: the same state, no events."""
    expires_at_ms = state.last_ts_ms + limits.retention_ms
    if now_ms < expires_at_ms:
        return state, []
    state, events = offline_check(state, expires_at_ms, limits)
    for name in _SLOTS:
        slot: OpenFault | None = getattr(state, name)
        if slot is not None and slot.cleared_at_ms is None:
            cleared = msgspec.structs.replace(slot, cleared_at_ms=expires_at_ms)
            events.append(fault_of(state, cleared, EXPIRED))
    if state.spike is not None and state.spike.confirmed:
        events.append(spike_of(state, state.spike, ended_at_ms=state.last_ts_ms))
    return None, events


def mark_suppressed(state: AssetRuleState, fault: Fault) -> AssetRuleState:
    """The state with the slot of ``fault`` marked suppressed (by the site's flood guard), so
    its later versions (cleared, re-opened) stay suppressed."""
    for name in _SLOTS:
        slot: OpenFault | None = getattr(state, name)
        if slot is not None and slot.code == fault.code and slot.opened_at_ms == fault.opened_at_ms:
            marked = msgspec.structs.replace(slot, suppressed=True)
            return msgspec.structs.replace(state, **{name: marked})
    return state
