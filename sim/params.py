"""What a simulation is asked for: ``SimParams`` (fleet shape, period, seed, how many of each
anomaly and near-miss), the fields that inject anomalies, and the all-kinds scenario.

The newer anomaly counts default to 0, so the default parameters give the same data as before
they existed; ``scenario_params`` turns them all on.
"""

from __future__ import annotations

import msgspec

from core.clock import DAY_MS
from domain.rules import DEFAULT_MAX_GAP_MS, DEFAULT_WINDOW_MS

NEAR_MISS_KINDS = ("blip", "flick", "short_gap", "voltage_near")
"""Episodes that must not fire: a one-reading power blip, one reading off, a gap shorter than
``offline_after_ms``, a voltage inside the band."""


class SimParams(msgspec.Struct, frozen=True):
    """Simulation parameters. ``fault_count`` and ``spike_count`` are totals over the fleet;
    spikes are injected on luminaires only. ``max_gap_ms`` and ``window_ms`` only shape the
    usage ground truth (the usage rule's parameters)."""

    sites: int = 1
    buildings_per_site: int = 2
    rooms_per_building: int = 4
    lamps_per_room: int = 6
    sensors_per_room: int = 1
    start_ms: int = 1_795_737_600_000  # 2026-11-27T00:00:00.000Z
    duration_ms: int = DAY_MS
    interval_ms: int = 60_000
    seed: int = 0
    fault_count: int = 4
    spike_count: int = 4
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    window_ms: int = DEFAULT_WINDOW_MS
    lamp_failure_count: int = 0
    voltage_count: int = 0
    flicker_count: int = 0
    offline_count: int = 0
    baseline_spike_count: int = 0
    site_spike_count: int = 0
    near_miss_count: int = 0
    offline_after_ms: int = 900_000
    flicker_toggles: int = 4
    flicker_window_ms: int = 600_000
    voltage_band: float = 0.1
    flicker_max_on_ms: int = 90_000


ANOMALY_COUNTS = (
    "fault_count",
    "spike_count",
    "lamp_failure_count",
    "voltage_count",
    "flicker_count",
    "offline_count",
    "baseline_spike_count",
    "site_spike_count",
)
"""The SimParams fields that inject anomalies (all zero: a clean scenario)."""


def scenario_params(**overrides: int | float) -> SimParams:
    """A scenario with every anomaly kind and near-miss injected: 20 sites over 24 h by
    default (``overrides`` replace any field)."""
    base: dict[str, int | float] = {
        "sites": 20,
        "buildings_per_site": 1,
        "rooms_per_building": 3,
        "lamps_per_room": 5,
        "sensors_per_room": 1,
        "interval_ms": 120_000,
        "seed": 1,
        "fault_count": 12,
        "spike_count": 12,
        "lamp_failure_count": 12,
        "voltage_count": 12,
        "flicker_count": 12,
        "offline_count": 12,
        "baseline_spike_count": 12,
        "site_spike_count": 8,
        "near_miss_count": 40,
        # Readings every 2 minutes: a short cycle (one reading on between two off) is seen as
        # a 2-minute on-period, so the window and the short-cycle bound follow the sampling.
        "flicker_window_ms": 1_500_000,
        "flicker_max_on_ms": 150_000,
    }
    base.update(overrides)
    return msgspec.convert(base, SimParams)
