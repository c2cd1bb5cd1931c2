"""The luminaires' day/night schedule in the site's local time: daylight and the dim level it
sets. Pure functions of the time (no RNG), so the episode planner can ask what a slot will look
like before any reading is drawn."""

from __future__ import annotations

import math

from core.clock import DAY_MS, HOUR_MS
from sim.fleet import AssetSpec, slot_ms
from sim.params import SimParams


def daylight_at(local_ms: int) -> float:
    """0 at night, rising to 1 at local noon (06:00-18:00)."""
    hours = local_ms % DAY_MS / HOUR_MS
    return math.sin(math.pi * (hours - 6.0) / 12.0) if 6.0 <= hours < 18.0 else 0.0


def scheduled_dim(local_ms: int, daylight: float) -> int:
    """Dim level of a luminaire: off at night, full at dawn/dusk, dimmed by daylight."""
    hour = local_ms % DAY_MS // HOUR_MS
    if hour < 6 or hour >= 22:
        return 0
    if hour < 8 or hour >= 18:
        return 80
    return max(30, round(100 - 70 * daylight))


def dim_at(params: SimParams, asset: AssetSpec, k: int) -> int:
    """The scheduled dim level of slot ``k``."""
    local_ms = slot_ms(params, asset, k) + asset.utc_offset_ms
    return scheduled_dim(local_ms, daylight_at(local_ms))
