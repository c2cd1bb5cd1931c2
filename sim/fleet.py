"""The simulated fleet: its layout (sites, buildings, rooms, luminaires and lux sensors) drawn
from the seeded RNG, the registry assets it stands for, and the slots each asset reports in.

Each asset reports at ``start_ms + phase_ms + k * interval_ms`` for every slot k that falls in
``[start_ms, start_ms + duration_ms)``; ``0 <= phase_ms < interval_ms``. Every asset of a site
shares the site's UTC offset.
"""

from __future__ import annotations

import random
from typing import Literal

import msgspec

from core.clock import HOUR_MS
from domain.registry import Asset
from sim.params import SimParams

SENSOR_RATED_W = 0.5
NOMINAL_VOLTAGE_V = 230.0


class AssetSpec(msgspec.Struct, frozen=True, gc=False):
    """One simulated asset of the registry."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    kind: Literal["luminaire", "lux_sensor"]
    rated_w: float
    phase_ms: int
    utc_offset_ms: int


def build_fleet(params: SimParams, rng: random.Random) -> list[AssetSpec]:
    """Every asset, in registry order: per site a UTC offset, then per room its luminaires
    (rated power, phase) and its lux sensors (phase), all drawn from ``rng`` in that order."""
    assets: list[AssetSpec] = []
    phase_range = params.interval_ms
    for s in range(1, params.sites + 1):
        site_id = f"site-{s:04d}"
        utc_offset_ms = rng.randint(-8, 9) * HOUR_MS
        for b in range(1, params.buildings_per_site + 1):
            building_id = f"{site_id}-b{b:02d}"
            for r in range(1, params.rooms_per_building + 1):
                room_id = f"{building_id}-r{r:02d}"
                for i in range(1, params.lamps_per_room + 1):
                    rated_w = float(rng.randrange(20, 151, 5))
                    assets.append(
                        AssetSpec(
                            site_id,
                            building_id,
                            room_id,
                            f"{room_id}-l{i:02d}",
                            "luminaire",
                            rated_w,
                            rng.randrange(phase_range),
                            utc_offset_ms,
                        )
                    )
                for i in range(1, params.sensors_per_room + 1):
                    assets.append(
                        AssetSpec(
                            site_id,
                            building_id,
                            room_id,
                            f"{room_id}-s{i:02d}",
                            "lux_sensor",
                            SENSOR_RATED_W,
                            rng.randrange(phase_range),
                            utc_offset_ms,
                        )
                    )
    if not assets:
        raise ValueError("the fleet is empty")
    return assets


def registry_asset(asset: AssetSpec) -> Asset:
    """``asset`` as a registry asset (a lux sensor is a ``sensor``)."""
    kind: Literal["luminaire", "sensor"] = "luminaire" if asset.kind == "luminaire" else "sensor"
    return Asset(
        asset.site_id,
        asset.building_id,
        asset.room_id,
        asset.asset_id,
        kind,
        asset.rated_w,
        NOMINAL_VOLTAGE_V,
    )


def slot_count(params: SimParams, asset: AssetSpec) -> int:
    """How many slots ``asset`` has in the period (injected gaps included)."""
    return -(-(params.duration_ms - asset.phase_ms) // params.interval_ms)


def slot_ms(params: SimParams, asset: AssetSpec, k: int) -> int:
    """The time of slot ``k`` of ``asset``."""
    return params.start_ms + asset.phase_ms + k * params.interval_ms
