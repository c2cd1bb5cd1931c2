"""When the current-state item of an asset is worth writing.

Operators read the current state for what they act on: on or off, the dim level, a fault
code, and the power as far as it tells them something. A reading that changes none of these
beyond the deadband is not written; the item is refreshed at least every `refresh_ms` of event
time so it never looks stale. Pure: the caller keeps the last state it wrote.
"""

from __future__ import annotations

import msgspec

from domain.events import AssetState


class Deadband(msgspec.Struct, frozen=True):
    """`min_w` and `fraction`: power moves less than `max(min_w, fraction * written power)`
    count as drift. `refresh_ms`: the longest a written state stands (event time)."""

    min_w: float = 2.0
    fraction: float = 0.05
    refresh_ms: int = 900_000


def worth_writing(written: AssetState | None, new: AssetState, band: Deadband) -> bool:
    """True when `new` should replace `written` (the state last written for this asset):
    nothing written yet, an operator-visible change (on/off, dim level, fault code), power
    outside the deadband, or the refresh time passed. A state older than `written` never is."""
    if written is None:
        return True
    if new.ts_ms <= written.ts_ms:
        return False
    if (new.on, new.dim_level, new.fault_code) != (
        written.on,
        written.dim_level,
        written.fault_code,
    ):
        return True
    if new.ts_ms - written.ts_ms >= band.refresh_ms:
        return True
    return abs(new.power_w - written.power_w) > max(band.min_w, band.fraction * written.power_w)
