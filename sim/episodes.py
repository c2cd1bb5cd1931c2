"""Where the injected anomalies and near-misses go: the seeded placement of every episode on
the fleet's slots, before any reading is drawn.

Besides device fault codes and rated-power spikes (``fault_count``, ``spike_count``), a
scenario can inject lamp failures, over/under voltage, flicker, offline gaps, spikes above the
learnt baseline and site demand spikes, and near-misses that must not fire (a one-reading power
blip, one reading off, a gap shorter than ``offline_after_ms``, a voltage inside the band).
Faults and spikes never touch an asset's first or last reading and keep at least one clean
reading from each other; each newer episode keeps a quiet margin of a flicker window (plus two
readings) from every other episode of its asset, and is only placed where the schedule lets it
be seen as intended.
"""

from __future__ import annotations

import random

import msgspec

from core.clock import MINUTE_MS
from domain.rules import OVER_VOLTAGE, UNDER_VOLTAGE
from sim.fleet import AssetSpec, slot_count
from sim.params import NEAR_MISS_KINDS, SimParams
from sim.schedule import dim_at

LUMINAIRE_FAULT_CODES = ("LAMP_FAILURE", "DRIVER_OVERTEMP", "FLICKER")
SENSOR_FAULT_CODES = ("SENSOR_STUCK", "LOW_BATTERY")
BASELINE_WARMUP = 10  # the rules' default (``Limits.baseline_warmup``)
BASELINE_BUCKET_PCT = 5  # the rules' default (``Limits.dim_bucket_pct``)
DROPPING_KINDS = frozenset({"offline", "short_gap"})
"""Episode kinds whose readings are not sent (an injected gap)."""


class PlannedEpisode(msgspec.Struct, frozen=True, gc=False):
    """Readings ``first <= k < end`` of one asset carry a fault ``code`` or a spike (``kind``
    empty), or an episode of a newer ``kind`` (``code`` then says over/under voltage)."""

    first: int
    end: int
    code: str | None  # None: spike
    kind: str = ""


def plan_episodes(
    params: SimParams, assets: list[AssetSpec], rng: random.Random
) -> tuple[dict[str, list[PlannedEpisode]], dict[str, tuple[int, int]]]:
    """Every episode by asset id, sorted by first slot, and each spiked site's injected
    ``(start_ms, end_ms)``. Faults and spikes are placed first, then site spikes, the per-asset
    kinds and near-misses (those only draw from ``rng`` for counts above zero). Raises
    ``ValueError`` when the requested episodes do not fit."""
    episodes = _plan_faults_and_spikes(params, assets, rng)
    site_spikes = _plan_new_episodes(params, assets, episodes, rng)
    return episodes, site_spikes


def _plan_faults_and_spikes(
    params: SimParams, assets: list[AssetSpec], rng: random.Random
) -> dict[str, list[PlannedEpisode]]:
    """Place faults then spikes. An episode never touches an asset's first or last reading and
    keeps at least one clean reading between itself and any other episode of that asset."""
    episodes: dict[str, list[PlannedEpisode]] = {}
    luminaires = [a for a in assets if a.kind == "luminaire"]
    wanted: list[tuple[list[AssetSpec], int, int, bool]] = [
        (assets, 1, 30, True),
        (luminaires, 2, 6, False),
    ]
    for (candidates, shortest, longest, is_fault), count in zip(
        wanted, (params.fault_count, params.spike_count), strict=True
    ):
        for _ in range(count):
            for _attempt in range(1000):
                if not candidates:
                    break
                asset = rng.choice(candidates)
                n = slot_count(params, asset)
                length = rng.randint(shortest, longest)
                if length > n - 2:
                    continue
                first = rng.randint(1, n - 1 - length)
                end = first + length
                taken = episodes.setdefault(asset.asset_id, [])
                if any(first <= e.end and e.first <= end for e in taken):
                    continue
                codes = LUMINAIRE_FAULT_CODES if asset.kind == "luminaire" else SENSOR_FAULT_CODES
                taken.append(PlannedEpisode(first, end, rng.choice(codes) if is_fault else None))
                break
            else:
                raise ValueError("cannot place the requested faults and spikes; lengthen the run")
            if not candidates:
                raise ValueError("spikes need luminaires")
    for taken in episodes.values():
        taken.sort(key=lambda e: e.first)
    return {asset_id: taken for asset_id, taken in episodes.items() if taken}


def _plan_new_episodes(
    params: SimParams,
    assets: list[AssetSpec],
    episodes: dict[str, list[PlannedEpisode]],
    rng: random.Random,
) -> dict[str, tuple[int, int]]:
    """Place site spikes, then the per-asset kinds, then near-misses (only draws from ``rng``
    for counts above zero). Returns each spiked site's injected ``(start_ms, end_ms)``."""
    interval_ms = params.interval_ms
    window = params.flicker_window_ms // interval_ms
    margin = window + 2
    luminaires = [a for a in assets if a.kind == "luminaire"]
    site_spikes: dict[str, tuple[int, int]] = {}

    def free(asset: AssetSpec, first: int, end: int) -> bool:
        n = slot_count(params, asset)
        if first < margin or end + margin >= n:
            return False
        taken = episodes.get(asset.asset_id, [])
        return not any(first - margin <= e.end and e.first <= end + margin for e in taken)

    def add(asset: AssetSpec, episode: PlannedEpisode) -> None:
        taken = episodes.setdefault(asset.asset_id, [])
        taken.append(episode)
        taken.sort(key=lambda e: e.first)

    sites = sorted({a.site_id for a in luminaires})
    for _ in range(params.site_spike_count):
        for _attempt in range(1000):
            site_id = rng.choice(sites)
            minutes = rng.randint(4, 6)
            span_min = params.duration_ms // MINUTE_MS
            first_minute = rng.randint(margin + 2, span_min - minutes - margin - 2)
            first_ms = params.start_ms + first_minute * MINUTE_MS
            end_ms = first_ms + minutes * MINUTE_MS
            lamps = [a for a in luminaires if a.site_id == site_id]
            slots = [(a, *_slots_within(params, a, first_ms, end_ms)) for a in lamps]
            if site_id in site_spikes or not all(
                first < end and free(a, first, end) for a, first, end in slots
            ):
                continue
            for a, first, end in slots:
                add(a, PlannedEpisode(first, end, None, "site_spike"))
            site_spikes[site_id] = (first_ms, end_ms)
            break
        else:
            raise ValueError("cannot place the requested site spikes; lengthen the run")

    offline_slots = -(-params.offline_after_ms // interval_ms)  # gap = (dropped + 1) slots
    short_gap = max(1, min(params.max_gap_ms // interval_ms, offline_slots - 2))
    cycles = 2 * params.flicker_toggles + 1
    plans: list[tuple[str, int, list[AssetSpec], int, int]] = [
        ("lamp_failure", params.lamp_failure_count, luminaires, 1, 10),
        ("voltage", params.voltage_count, assets, 1, 10),
        # Alternating readings: one short cycle per two readings, the rule needs
        # ``flicker_toggles`` of them.
        ("flicker", params.flicker_count, luminaires, cycles, max(cycles, window + 2)),
        ("offline", params.offline_count, assets, offline_slots - 1, offline_slots + 20),
        ("baseline_spike", params.baseline_spike_count, luminaires, 2, 6),
    ]
    near_kinds = [NEAR_MISS_KINDS[i % len(NEAR_MISS_KINDS)] for i in range(params.near_miss_count)]
    for kind in NEAR_MISS_KINDS:
        count = near_kinds.count(kind)
        if kind == "short_gap":
            plans.append((kind, count, assets, short_gap, short_gap))
        elif kind == "voltage_near":
            plans.append((kind, count, assets, 1, 5))
        else:
            plans.append((kind, count, luminaires, 1, 1))
    for kind, count, candidates, shortest, longest in plans:
        for _ in range(count):
            for _attempt in range(5000):
                if not candidates:
                    raise ValueError(f"{kind} needs luminaires")
                asset = rng.choice(candidates)
                length = rng.randint(shortest, longest)
                first = rng.randint(margin, max(margin, slot_count(params, asset) - margin))
                end = first + length
                code = rng.choice((OVER_VOLTAGE, UNDER_VOLTAGE)) if "voltage" in kind else None
                if free(asset, first, end) and _fits(params, asset, kind, (first, end), window):
                    add(asset, PlannedEpisode(first, end, code, kind))
                    break
            else:
                raise ValueError(f"cannot place the requested {kind} episodes; lengthen the run")
    return site_spikes


def _slots_within(
    params: SimParams, asset: AssetSpec, first_ms: int, end_ms: int
) -> tuple[int, int]:
    """Slots ``first <= k < end`` whose time is in ``[first_ms, end_ms)``."""
    base_ms = params.start_ms + asset.phase_ms
    first = max(0, -(-(first_ms - base_ms) // params.interval_ms))
    end = max(first, -(-(end_ms - base_ms) // params.interval_ms))
    return first, end


def _fits(
    params: SimParams, asset: AssetSpec, kind: str, span: tuple[int, int], window: int
) -> bool:
    """Whether the schedule around ``span`` (``[first, end)``) lets ``kind`` be seen as
    intended."""
    first, end = span
    if kind == "lamp_failure":
        # Lit and dimmed up for the whole episode.
        return all(dim_at(params, asset, k) >= 30 for k in range(first, end))
    if kind in ("flicker", "flick"):
        # Lit for a window either side: no scheduled switching adds toggles.
        return all(dim_at(params, asset, k) > 0 for k in range(first - window, end + window + 1))
    if kind == "baseline_spike":
        dims = [dim_at(params, asset, k) for k in range(first, end + 3)]
        if not all(30 <= d <= 45 and abs(d - dims[0]) <= 2 for d in dims):
            return False
        # Each bucket of the episode was lit long enough before it to be learnt.
        for d in set(dims[: end - first]):
            bucket = d - d % BASELINE_BUCKET_PCT
            learnt = sum(
                1
                for k in range(first)
                if dim_at(params, asset, k) // BASELINE_BUCKET_PCT * BASELINE_BUCKET_PCT == bucket
            )
            if learnt < 2 * BASELINE_WARMUP:
                return False
    return True
