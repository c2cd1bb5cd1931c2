"""The site flood guard: when more than ``max_new_faults`` new faults of one code open at one
site within ``window_ms``, one site-level ``Fault`` (``level="site"``) stands for the flood and
every further new fault of that code is kept but marked ``suppressed`` until the flood ends
(``window_ms`` without a new fault of that code). ISA-18.2 counts more than about ten alarms
per operator in ten minutes as a flood; those are the defaults.
"""

from __future__ import annotations

import msgspec

from domain.events import Fault


class FloodLimits(msgspec.Struct, frozen=True, gc=False):
    max_new_faults: int = 10
    window_ms: int = 600_000


class FloodState(msgspec.Struct, frozen=True, gc=False):
    """New faults of one (site, code) within the window (their open times), and the flood in
    progress: its start and the number of faults it suppressed so far."""

    recent_ms: tuple[int, ...] = ()
    flood_opened_at_ms: int | None = None
    suppressed: int = 0
    last_ms: int = 0


def is_new(fault: Fault) -> bool:
    """A fault the guard judges: an asset's fault opening for the first time."""
    return fault.level == "asset" and fault.status == "open" and fault.occurrences == 1


def flood_guard(
    state: FloodState | None, fault: Fault, limits: FloodLimits
) -> tuple[FloodState, bool, list[Fault]]:
    """Count a new fault (``is_new``) of its site and code. Returns the new state, whether the
    fault is suppressed, and the site-level event when this fault starts a flood (opened at
    this fault's ``opened_at_ms``, ``occurrences`` = faults suppressed)."""
    state = state or FloodState()
    ts_ms = fault.opened_at_ms
    opened_at_ms = state.flood_opened_at_ms
    events: list[Fault] = []
    if opened_at_ms is None:
        # Only the last ``max_new_faults`` times matter: more within the window is a flood.
        kept = state.recent_ms[-limits.max_new_faults :] if limits.max_new_faults else ()
        recent = (*(t for t in kept if t > ts_ms - limits.window_ms), ts_ms)
        if len(recent) <= limits.max_new_faults:
            return FloodState(recent, None, 0, ts_ms), False, events
        opened_at_ms = ts_ms
        events.append(_site_fault(fault.site_id, fault.code, ts_ms, 1, None))
    return FloodState((), opened_at_ms, state.suppressed + 1, ts_ms), True, events


def flood_check(
    state: FloodState, site_id: str, code: str, now_ms: int, limits: FloodLimits
) -> tuple[FloodState | None, list[Fault]]:
    """End a flood ``window_ms`` after its last fault (cleared at that time, with the final
    count); ``None`` when nothing is left to remember (no flood, no recent fault)."""
    events: list[Fault] = []
    quiet_at_ms = state.last_ms + limits.window_ms
    if now_ms < quiet_at_ms:
        return state, events
    if state.flood_opened_at_ms is not None:
        events.append(
            _site_fault(site_id, code, state.flood_opened_at_ms, state.suppressed, quiet_at_ms)
        )
    return None, events


def _site_fault(
    site_id: str, code: str, opened_at_ms: int, count: int, cleared_at_ms: int | None
) -> Fault:
    return Fault(
        site_id,
        "",
        "",
        "",
        code,
        opened_at_ms,
        "open" if cleared_at_ms is None else "cleared",
        cleared_at_ms,
        count,
        level="site",
    )
