"""The rule thresholds that match a simulated scenario: each asset's rated-power spike
threshold and limits, and each site's defaults (demand threshold from the generated data, the
scenario's voltage, offline and flicker parameters)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from core.clock import HOUR_MS, MINUTE_MS
from domain.registry import SiteDefaults
from domain.rules import DEFAULT_MAX_GAP_MS, Limits
from sim.fleet import NOMINAL_VOLTAGE_V, AssetSpec
from sim.params import SimParams
from sim.readings import Values

SPIKE_THRESHOLD_FACTOR = 1.25


def spike_threshold_w(asset: AssetSpec) -> float:
    """``1.25 * rated_w``: above every normal reading, below every injected spike."""
    return SPIKE_THRESHOLD_FACTOR * asset.rated_w


def limits_for(asset: AssetSpec, max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> Limits:
    """The rule limits of a simulated asset."""
    return Limits(spike_threshold_w(asset), max_gap_ms)


def site_defaults(
    params: SimParams,
    assets: list[AssetSpec],
    sent: Callable[[AssetSpec], list[Values]],
    site_spikes: dict[str, tuple[int, int]],
) -> dict[str, SiteDefaults]:
    """Per-site thresholds matching the scenario, from the readings ``sent`` by each asset and
    each spiked site's injected ``(start_ms, end_ms)``. The demand threshold is the site's rated
    capacity (sum of rated power), raised 5 % above the busiest minute outside injected site
    spikes if that minute reaches it; raises ``ValueError`` if an injected site spike is then
    not clearly (5 %) above it."""
    capacity: dict[str, float] = {}
    demand_wh: dict[tuple[str, int], float] = {}
    for asset in assets:
        capacity[asset.site_id] = capacity.get(asset.site_id, 0.0) + asset.rated_w
        values = sent(asset)
        for a, b in itertools.pairwise(values):
            if b[0] - a[0] > params.max_gap_ms:
                continue
            cursor = a[0]
            while cursor < b[0]:
                minute_ms = cursor - cursor % MINUTE_MS
                piece_end = min(minute_ms + MINUTE_MS, b[0])
                key = (asset.site_id, minute_ms)
                # Trapezoid, as ``domain.usage``: power linear between the readings.
                at_start = a[1] + (b[1] - a[1]) * (cursor - a[0]) / (b[0] - a[0])
                at_end = a[1] + (b[1] - a[1]) * (piece_end - a[0]) / (b[0] - a[0])
                piece_wh = (at_start + at_end) / 2 * (piece_end - cursor) / HOUR_MS
                demand_wh[key] = demand_wh.get(key, 0.0) + piece_wh
                cursor = piece_end
    busiest: dict[str, float] = {}
    quietest_spike: dict[str, float] = {}
    for (site_id, minute_ms), wh in demand_wh.items():
        demand_w = wh * HOUR_MS / MINUTE_MS
        spike = site_spikes.get(site_id)
        # Energy is linear between readings: the interval before the first and after the last
        # spike reading ramp, so only minutes a reading interval inside count as the spike.
        lead_ms = params.interval_ms
        if spike is not None and spike[0] - lead_ms <= minute_ms < spike[1] + lead_ms:
            if spike[0] + lead_ms <= minute_ms < spike[1] - lead_ms:
                quietest_spike[site_id] = min(quietest_spike.get(site_id, math.inf), demand_w)
            continue
        busiest[site_id] = max(busiest.get(site_id, 0.0), demand_w)
    out: dict[str, SiteDefaults] = {}
    for site_id in sorted(capacity):
        threshold_w = max(capacity[site_id], 1.05 * busiest.get(site_id, 0.0))
        if quietest_spike.get(site_id, math.inf) <= 1.05 * threshold_w:
            raise ValueError(f"the site spike of {site_id} is not clearly above its threshold")
        out[site_id] = SiteDefaults(
            site_id,
            demand_threshold_w=round(threshold_w, 1),
            min_spike_ms=2 * params.interval_ms,
            voltage_band=params.voltage_band,
            offline_after_ms=params.offline_after_ms,
            flicker_toggles=params.flicker_toggles,
            flicker_window_ms=params.flicker_window_ms,
            flicker_max_on_ms=params.flicker_max_on_ms,
            nominal_voltage_v=NOMINAL_VOLTAGE_V,
            max_gap_ms=params.max_gap_ms,
        )
    return out
