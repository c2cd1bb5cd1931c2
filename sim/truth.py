"""The ground truth of a simulation: every injected episode as the rules must report it (fault
codes, rated-power spikes, the newer event kinds, near-misses that must not fire) and the usage
the readings add up to, computed from the readings actually sent.

Usage is integrated as ``domain.usage`` does (trapezoid between readings, intervals longer than
``max_gap_ms`` excluded), in time order per asset; spikes and flicker follow their rules'
definitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from core.clock import HOUR_MS
from domain.rules import (
    BASELINE_RULE,
    DEFAULT_COOLDOWN_MS,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
)
from domain.site import SITE_DEMAND_RULE
from sim.episodes import PlannedEpisode
from sim.fleet import AssetSpec, slot_count, slot_ms
from sim.params import NEAR_MISS_KINDS, SimParams
from sim.readings import Values
from sim.thresholds import spike_threshold_w


class FaultTruth(msgspec.Struct, frozen=True, gc=False):
    """``start_ms``: ts of the first faulty reading; ``end_ms``: ts of the first clean one."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    code: str
    start_ms: int
    end_ms: int


class SpikeTruth(msgspec.Struct, frozen=True, gc=False):
    """``start_ms``/``end_ms`` as the spike rule defines them; ``excess_wh`` integrated the same
    way (left rectangle above ``threshold_w``, intervals longer than ``max_gap_ms`` excluded)."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    start_ms: int
    end_ms: int
    peak_w: float
    threshold_w: float
    excess_wh: float


class UsageTruth(msgspec.Struct, frozen=True, gc=False):
    """Wh and covered ms of one asset in ``[window_start_ms, window_start_ms + window_ms)``,
    summed in time order from the per-interval contributions of the usage rule."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    window_start_ms: int
    wh: float
    covered_ms: int


class EventTruth(msgspec.Struct, frozen=True, gc=False):
    """An injected episode of the newer kinds, as the rules must report it.

    ``kind``: ``lamp_failure``, ``voltage``, ``flicker``, ``offline`` (faults; ``code`` is the
    fault code) or ``energy_spike`` (``code`` is the rule). For a site demand spike the
    building, room and asset ids are empty and the times are the injected minute bounds (the
    first and last minute may be partly covered, so a detection may be up to one reading
    interval later). Near-misses use their own kinds (``NEAR_MISS_KINDS``) and must not fire.
    """

    kind: str
    code: str
    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    start_ms: int
    end_ms: int


class GroundTruth(msgspec.Struct, frozen=True):
    """What was injected and what usage must add up to; sorted by (asset, start).
    ``faults`` are device fault codes, ``spikes`` rated-power spikes; ``events`` the other
    kinds and ``near_misses`` what must not fire."""

    params: SimParams
    faults: list[FaultTruth]
    spikes: list[SpikeTruth]
    usage: list[UsageTruth]
    events: list[EventTruth] = msgspec.field(default_factory=list)
    near_misses: list[EventTruth] = msgspec.field(default_factory=list)


def encode_ground_truth(truth: GroundTruth) -> bytes:
    """JSON bytes; floats round-trip exactly."""
    return msgspec.json.encode(truth)


def decode_ground_truth(data: bytes) -> GroundTruth:
    """The ground truth ``encode_ground_truth`` wrote."""
    return msgspec.json.decode(data, type=GroundTruth)


def ground_truth(
    params: SimParams,
    assets: list[AssetSpec],
    episodes: dict[str, list[PlannedEpisode]],
    site_spikes: dict[str, tuple[int, int]],
    sent: Callable[[AssetSpec], list[Values]],
) -> GroundTruth:
    """Faults, spikes, events, near-misses and usage of the planned ``episodes`` and
    ``site_spikes``, computed from the readings ``sent`` by each asset."""
    faults: list[FaultTruth] = []
    spikes: list[SpikeTruth] = []
    usage: list[UsageTruth] = []
    events: list[EventTruth] = []
    near_misses: list[EventTruth] = []
    interval_ms = params.interval_ms
    for asset in assets:
        values = sent(asset)
        ts = [v[0] for v in values]
        power = [v[1] for v in values]
        slot0_ms = params.start_ms + asset.phase_ms
        ids = (asset.site_id, asset.building_id, asset.room_id, asset.asset_id)
        flicker_truth = _flicker_truth(params, asset, values)
        slot_ts, slot_power = _by_slot(params, asset, values)
        for episode in episodes.get(asset.asset_id, []):
            start_ms = slot0_ms + episode.first * interval_ms
            end_ms = slot0_ms + episode.end * interval_ms
            if episode.kind in NEAR_MISS_KINDS:
                near_misses.append(
                    EventTruth(episode.kind, episode.code or "", *ids, start_ms, end_ms)
                )
            elif episode.kind == "site_spike":
                continue  # one truth per site, below
            elif episode.kind == "lamp_failure":
                events.append(EventTruth(LAMP_FAILURE, LAMP_FAILURE, *ids, start_ms, end_ms))
            elif episode.kind == "voltage":
                events.append(EventTruth("voltage", episode.code or "", *ids, start_ms, end_ms))
            elif episode.kind == "offline":
                opened_ms = start_ms - interval_ms + params.offline_after_ms
                events.append(EventTruth(OFFLINE, OFFLINE, *ids, opened_ms, end_ms))
            elif episode.kind == "baseline_spike":
                events.append(EventTruth("energy_spike", BASELINE_RULE, *ids, start_ms, end_ms))
            elif episode.kind == "flicker":
                opened_ms, cleared_ms = flicker_truth.pop(0)
                events.append(EventTruth(FLICKER, FLICKER, *ids, opened_ms, cleared_ms))
            elif episode.code is not None:
                faults.append(
                    FaultTruth(
                        asset.site_id,
                        asset.building_id,
                        asset.room_id,
                        asset.asset_id,
                        episode.code,
                        slot_ts[episode.first],
                        slot_ts[episode.end],
                    )
                )
            else:
                spikes.append(_spike_truth(params, asset, episode, slot_ts, slot_power))
        if flicker_truth:
            raise ValueError(f"{asset.asset_id} flickers where nothing was injected")
        usage.extend(_usage_truth(params, asset, ts, power))
    for site_id, (first_ms, end_ms) in sorted(site_spikes.items()):
        events.append(
            EventTruth("energy_spike", SITE_DEMAND_RULE, site_id, "", "", "", first_ms, end_ms)
        )
    events.sort(key=lambda e: (e.asset_id, e.site_id, e.start_ms))
    near_misses.sort(key=lambda e: (e.asset_id, e.start_ms))
    return GroundTruth(params, faults, spikes, usage, events, near_misses)


def _spike_truth(
    params: SimParams, asset: AssetSpec, episode: PlannedEpisode, ts: list[int], power: list[float]
) -> SpikeTruth:
    threshold_w = spike_threshold_w(asset)
    excess_wh = 0.0
    for k in range(episode.first, episode.end):
        if ts[k + 1] - ts[k] <= params.max_gap_ms:
            excess_wh += (power[k] - threshold_w) * (ts[k + 1] - ts[k]) / HOUR_MS
    return SpikeTruth(
        asset.site_id,
        asset.building_id,
        asset.room_id,
        asset.asset_id,
        ts[episode.first],
        ts[episode.end],
        max(power[episode.first : episode.end]),
        threshold_w,
        excess_wh,
    )


def _usage_truth(
    params: SimParams, asset: AssetSpec, ts: list[int], power: list[float]
) -> list[UsageTruth]:
    window_ms = params.window_ms
    wh: dict[int, float] = {}
    covered: dict[int, int] = {}
    for k in range(len(ts) - 1):
        if ts[k + 1] - ts[k] > params.max_gap_ms:
            continue
        cursor = ts[k]
        while cursor < ts[k + 1]:
            window_start_ms = cursor // window_ms * window_ms
            piece_end = min(window_start_ms + window_ms, ts[k + 1])
            # Trapezoid: power linear between the two readings (``domain.usage``).
            span_ms = ts[k + 1] - ts[k]
            at_start = power[k] + (power[k + 1] - power[k]) * (cursor - ts[k]) / span_ms
            at_end = power[k] + (power[k + 1] - power[k]) * (piece_end - ts[k]) / span_ms
            wh[window_start_ms] = wh.get(window_start_ms, 0.0) + (
                (at_start + at_end) / 2 * (piece_end - cursor) / HOUR_MS
            )
            covered[window_start_ms] = covered.get(window_start_ms, 0) + piece_end - cursor
            cursor = piece_end
    return [
        UsageTruth(
            asset.site_id,
            asset.building_id,
            asset.room_id,
            asset.asset_id,
            start,
            wh[start],
            covered[start],
        )
        for start in sorted(wh)
    ]


def _by_slot(
    params: SimParams, asset: AssetSpec, values: list[Values]
) -> tuple[list[int], list[float]]:
    """Time and power per slot (power NaN in an injected gap)."""
    n = slot_count(params, asset)
    slot_ts = [slot_ms(params, asset, k) for k in range(n)]
    slot_power = [math.nan] * n
    for v in values:
        slot_power[(v[0] - slot_ts[0]) // params.interval_ms] = v[1]
    return slot_ts, slot_power


def _flicker_truth(
    params: SimParams, asset: AssetSpec, values: list[Values]
) -> list[tuple[int, int]]:
    """Every ``(opened_ms, cleared_ms)`` where at least ``flicker_toggles`` short cycles (an
    on-period shorter than ``flicker_max_on_ms``) end within ``(ts - flicker_window_ms, ts]``
    (the flicker rule's definition), episodes re-opening within the cool-down merged."""
    if asset.kind != "luminaire":
        return []
    out: list[tuple[int, int]] = []
    cycles: list[int] = []
    opened_ms: int | None = None
    last_on: bool | None = None
    on_since: int | None = None
    for v in values:
        ts_ms, on = v[0], v[5]
        if on and last_on is False:
            on_since = ts_ms
        elif not on:
            if last_on and on_since is not None and ts_ms - on_since < params.flicker_max_on_ms:
                cycles.append(ts_ms)
            on_since = None
        last_on = on
        cycles = [t for t in cycles if t > ts_ms - params.flicker_window_ms]
        flickering = len(cycles) >= params.flicker_toggles
        if flickering and opened_ms is None:
            merge = out and ts_ms - out[-1][1] <= DEFAULT_COOLDOWN_MS
            opened_ms = out.pop()[0] if merge else ts_ms
        elif not flickering and opened_ms is not None:
            out.append((opened_ms, ts_ms))
            opened_ms = None
    return out
