"""Deterministic telemetry for a fleet of sites, with injected faults and spikes and the exact
ground truth the rules must find.

Everything follows from ``SimParams`` (``seed`` included): the fleet and the episode plan come
from one ``random.Random(seed)``; each asset's readings come from its own
``random.Random(f"{seed}/{asset_id}")`` drawn in reading order, so any pass over the data
(``records``, ``readings``, ``ground_truth``) sees the same values.

Each asset reports at ``start_ms + phase_ms + k * interval_ms`` for every k that falls in
``[start_ms, start_ms + duration_ms)``; ``0 <= phase_ms < interval_ms`` (readings inside an
injected gap are not sent).
Luminaires follow a day/night schedule in the site's local time with dimming by daylight and
+-2% noise, so normal power never exceeds ``rated_w * 1.02``, well below the spike threshold
``1.25 * rated_w``. Lux sensors draw about 0.5 W.

Besides device fault codes and rated-power spikes (``fault_count``, ``spike_count``), a
scenario can inject lamp failures, over/under voltage, flicker, offline gaps, spikes above the
learnt baseline and site demand spikes, and near-misses that must not fire (a one-reading power
blip, one reading off, a gap shorter than ``offline_after_ms``, a voltage inside the band).
Their counts default to 0, so the default parameters give the same data as before.
``scenario_params`` turns them all on. Each new episode keeps a quiet margin of a flicker
window (plus two readings) from every other episode of its asset.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator
from typing import Literal

import msgspec

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.registry import Asset, SiteDefaults, limits_of
from domain.rules import (
    BASELINE_RULE,
    DEFAULT_COOLDOWN_MS,
    DEFAULT_MAX_GAP_MS,
    DEFAULT_WINDOW_MS,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
    OVER_VOLTAGE,
    UNDER_VOLTAGE,
    Limits,
)
from domain.site import SITE_DEMAND_RULE
from domain.telemetry import Reading, encode_reading

SPIKE_THRESHOLD_FACTOR = 1.25
SENSOR_RATED_W = 0.5
STANDBY_W = 0.3
NOMINAL_VOLTAGE_V = 230.0
LUMINAIRE_FAULT_CODES = ("LAMP_FAILURE", "DRIVER_OVERTEMP", "FLICKER")
SENSOR_FAULT_CODES = ("SENSOR_STUCK", "LOW_BATTERY")
_NOISE = 0.04  # full width of the uniform noise: +-2%
SITE_SPIKE_FACTOR = 1.2  # every lamp of the site at 120 % of rated: below its own threshold
BASELINE_SPIKE_FACTOR = 2.0  # to 2.4 times the usual power at that dim level
BASELINE_WARMUP = 10  # the rules' default (``Limits.baseline_warmup``)
BASELINE_BUCKET_PCT = 5  # the rules' default (``Limits.dim_bucket_pct``)
NEAR_MISS_KINDS = ("blip", "flick", "short_gap", "voltage_near")


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


def spike_threshold_w(asset: AssetSpec) -> float:
    """``1.25 * rated_w``: above every normal reading, below every injected spike."""
    return SPIKE_THRESHOLD_FACTOR * asset.rated_w


def limits_for(asset: AssetSpec, max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> Limits:
    """The rule limits of a simulated asset."""
    return Limits(spike_threshold_w(asset), max_gap_ms)


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
    return msgspec.json.decode(data, type=GroundTruth)


class _Episode(msgspec.Struct, frozen=True, gc=False):
    """Readings ``first <= k < end`` of one asset carry a fault ``code`` or a spike (``kind``
    empty), or an episode of a newer ``kind`` (``code`` then says over/under voltage)."""

    first: int
    end: int
    code: str | None  # None: spike
    kind: str = ""


# One reading's values: ts_ms, power_w, voltage_v, current_a, lux, on, dim_level, fault_code.
_Values = tuple[int, float, float, float, float, bool, int, str | None]


class Simulation:
    """A planned simulation. Construction builds the fleet and places the episodes; data is
    generated lazily by ``records``/``readings`` and can be generated any number of times."""

    def __init__(self, params: SimParams) -> None:
        if not 0 < params.interval_ms <= params.duration_ms:
            raise ValueError("need 0 < interval_ms <= duration_ms")
        self.params = params
        rng = random.Random(params.seed)
        self.assets: list[AssetSpec] = _build_fleet(params, rng)
        self.asset_by_id: dict[str, AssetSpec] = {a.asset_id: a for a in self.assets}
        self._episodes: dict[str, list[_Episode]] = _plan_episodes(params, self.assets, rng)
        self._site_spikes: dict[str, tuple[int, int]] = _plan_new_episodes(
            params, self.assets, self._episodes, rng
        )
        self._site_defaults: dict[str, SiteDefaults] | None = None
        self._kept_cache: dict[str, list[_Values]] = {}
        # Ties in time are broken by registry order; phase < interval keeps global time order.
        self._order = sorted(self.assets, key=lambda a: a.phase_ms)

    def reading_count(self, asset: AssetSpec) -> int:
        """How many readings ``asset`` sends in the period (injected gaps excluded)."""
        dropped = sum(
            e.end - e.first for e in self._episodes.get(asset.asset_id, []) if e.kind in _DROPPING
        )
        return _reading_count(self.params, asset) - dropped

    def registry(self) -> list[Asset]:
        """The fleet as registry assets (lux sensors are ``sensor``s)."""
        return [
            Asset(
                a.site_id,
                a.building_id,
                a.room_id,
                a.asset_id,
                "luminaire" if a.kind == "luminaire" else "sensor",
                a.rated_w,
                NOMINAL_VOLTAGE_V,
            )
            for a in self.assets
        ]

    def site_defaults(self) -> dict[str, SiteDefaults]:
        """Per-site thresholds matching the scenario. The demand threshold is the site's rated
        capacity (sum of rated power), raised 5 % above the busiest minute outside injected
        site spikes if that minute reaches it; raises ``ValueError`` if an injected site spike
        is then not clearly (5 %) above it."""
        if self._site_defaults is None:
            self._site_defaults = _site_defaults(self)
        return self._site_defaults

    def limits(self, asset_id: str) -> Limits:
        """``registry.limits_of`` the asset with its site's defaults."""
        asset = self.asset_by_id[asset_id]
        return limits_of(self.registry_asset(asset), self.site_defaults()[asset.site_id])

    def registry_asset(self, asset: AssetSpec) -> Asset:
        kind: Literal["luminaire", "sensor"] = (
            "luminaire" if asset.kind == "luminaire" else "sensor"
        )
        return Asset(
            asset.site_id,
            asset.building_id,
            asset.room_id,
            asset.asset_id,
            kind,
            asset.rated_w,
            NOMINAL_VOLTAGE_V,
        )

    def records(self) -> Iterator[tuple[str, bytes]]:
        """``(partition_key = site_id, JSON telemetry)`` for every reading, in time order."""
        for reading in self.readings():
            yield reading.site_id, encode_reading(reading)

    def readings(self) -> Iterator[Reading]:
        """Every reading, in time order (``records`` is them encoded)."""
        for asset, values in self._values_in_time_order():
            ts_ms, power_w, voltage_v, current_a, lux, on, dim_level, code = values
            yield Reading(
                asset.site_id,
                asset.building_id,
                asset.room_id,
                asset.asset_id,
                ts_ms,
                power_w,
                voltage_v,
                current_a,
                lux,
                on,
                dim_level,
                code,
            )

    def _values_in_time_order(self) -> Iterator[tuple[AssetSpec, _Values]]:
        series = [(asset, self._series(asset)) for asset in self._order]
        rounds = max(_reading_count(self.params, asset) for asset in self.assets)
        for _ in range(rounds):
            for asset, values in series:
                # Assets with a late phase have one slot fewer; their series just ends.
                # A slot inside an injected gap is None: nothing is sent.
                value = next(values, None)
                if value is not None:
                    yield asset, value

    def _series(self, asset: AssetSpec) -> Iterator[_Values | None]:
        return _series(self.params, asset, self._episodes.get(asset.asset_id, []))

    def _kept(self, asset: AssetSpec) -> list[_Values]:
        kept = self._kept_cache.get(asset.asset_id)
        if kept is None:
            kept = [v for v in self._series(asset) if v is not None]
            self._kept_cache[asset.asset_id] = kept
        return kept

    def ground_truth(self) -> GroundTruth:
        """Faults, spikes and hourly usage, computed from the generated values."""
        params = self.params
        faults: list[FaultTruth] = []
        spikes: list[SpikeTruth] = []
        usage: list[UsageTruth] = []
        events: list[EventTruth] = []
        near_misses: list[EventTruth] = []
        interval_ms = params.interval_ms
        for asset in self.assets:
            values = self._kept(asset)
            ts = [v[0] for v in values]
            power = [v[1] for v in values]
            slot0_ms = params.start_ms + asset.phase_ms
            ids = (asset.site_id, asset.building_id, asset.room_id, asset.asset_id)
            flicker_truth = _flicker_truth(params, asset, values)
            slot_ts, slot_power = _by_slot(params, asset, values)
            for episode in self._episodes.get(asset.asset_id, []):
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
        for site_id, (first_ms, end_ms) in sorted(self._site_spikes.items()):
            events.append(
                EventTruth("energy_spike", SITE_DEMAND_RULE, site_id, "", "", "", first_ms, end_ms)
            )
        events.sort(key=lambda e: (e.asset_id, e.site_id, e.start_ms))
        near_misses.sort(key=lambda e: (e.asset_id, e.start_ms))
        return GroundTruth(params, faults, spikes, usage, events, near_misses)


def _build_fleet(params: SimParams, rng: random.Random) -> list[AssetSpec]:
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


def _reading_count(params: SimParams, asset: AssetSpec) -> int:
    return -(-(params.duration_ms - asset.phase_ms) // params.interval_ms)


def _plan_episodes(
    params: SimParams, assets: list[AssetSpec], rng: random.Random
) -> dict[str, list[_Episode]]:
    """Place faults then spikes. An episode never touches an asset's first or last reading and
    keeps at least one clean reading between itself and any other episode of that asset."""
    episodes: dict[str, list[_Episode]] = {}
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
                n = _reading_count(params, asset)
                length = rng.randint(shortest, longest)
                if length > n - 2:
                    continue
                first = rng.randint(1, n - 1 - length)
                end = first + length
                taken = episodes.setdefault(asset.asset_id, [])
                if any(first <= e.end and e.first <= end for e in taken):
                    continue
                codes = LUMINAIRE_FAULT_CODES if asset.kind == "luminaire" else SENSOR_FAULT_CODES
                taken.append(_Episode(first, end, rng.choice(codes) if is_fault else None))
                break
            else:
                raise ValueError("cannot place the requested faults and spikes; lengthen the run")
            if not candidates:
                raise ValueError("spikes need luminaires")
    for taken in episodes.values():
        taken.sort(key=lambda e: e.first)
    return {asset_id: taken for asset_id, taken in episodes.items() if taken}


def _daylight(local_ms: int) -> float:
    """0 at night, rising to 1 at local noon (06:00-18:00)."""
    hours = local_ms % DAY_MS / HOUR_MS
    return math.sin(math.pi * (hours - 6.0) / 12.0) if 6.0 <= hours < 18.0 else 0.0


def _schedule(local_ms: int, daylight: float) -> int:
    """Dim level of a luminaire: off at night, full at dawn/dusk, dimmed by daylight."""
    hour = local_ms % DAY_MS // HOUR_MS
    if hour < 6 or hour >= 22:
        return 0
    if hour < 8 or hour >= 18:
        return 80
    return max(30, round(100 - 70 * daylight))


def _series(
    params: SimParams, asset: AssetSpec, episodes: list[_Episode]
) -> Iterator[_Values | None]:
    """The readings of one asset, ``None`` for a slot inside an injected gap. Exactly two draws
    from the asset's RNG per slot, sent or not."""
    rng = random.Random(f"{params.seed}/{asset.asset_id}")
    draw = rng.random
    rated_w = asset.rated_w
    is_lamp = asset.kind == "luminaire"
    marks: dict[int, _Episode] = {}
    for planned in episodes:
        for k in range(planned.first, planned.end):
            marks[k] = planned
    ts_ms = params.start_ms + asset.phase_ms
    for k in range(_reading_count(params, asset)):
        u_power, u_other = draw(), draw()
        local_ms = ts_ms + asset.utc_offset_ms
        daylight = _daylight(local_ms)
        episode = marks.get(k)
        code = episode.code if episode is not None else None
        kind = episode.kind if episode is not None else ""
        if kind in _DROPPING:
            yield None
            ts_ms += params.interval_ms
            continue
        noise = 1.0 + _NOISE * (u_power - 0.5)
        if not is_lamp:
            on, dim_level = True, 0
            power_w = rated_w * noise
            lux = 20.0 + 780.0 * daylight * (0.9 + 0.2 * u_other)
        elif (episode is not None and code is None and kind == "") or kind == "blip":
            on, dim_level = True, 100
            power_w = rated_w * (1.6 + 0.9 * u_power)
            lux = 900.0
        elif kind == "site_spike":
            on, dim_level = True, 100
            power_w = rated_w * SITE_SPIKE_FACTOR * noise
            lux = 900.0
        else:
            dim_level = _schedule(local_ms, daylight)
            on = dim_level > 0
            if kind == "flick" or (
                kind == "flicker" and episode is not None and k % 2 == episode.first % 2
            ):
                on, dim_level = False, 0
            if code == "LAMP_FAILURE" or kind == "lamp_failure" or not on:
                power_w, lux = STANDBY_W * noise, 0.0
            elif kind == "baseline_spike":
                factor = BASELINE_SPIKE_FACTOR + 0.4 * u_power
                power_w, lux = rated_w * dim_level / 100 * factor, dim_level * 6.0
            else:
                power_w, lux = rated_w * dim_level / 100 * noise, dim_level * 6.0
        voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + 0.02 * (u_other - 0.5)), 1)
        if kind == "voltage":
            off_nominal = params.voltage_band + 0.03 + 0.02 * (u_other - 0.5)
            sign = 1.0 if code == OVER_VOLTAGE else -1.0
            voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + sign * off_nominal), 1)
        elif kind == "voltage_near":
            inside = params.voltage_band - 0.03 + 0.02 * (u_other - 0.5)
            sign = 1.0 if code == OVER_VOLTAGE else -1.0
            voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + sign * inside), 1)
        power_w = round(power_w, 3)
        yield (
            ts_ms,
            power_w,
            voltage_v,
            round(power_w / voltage_v, 4),
            round(lux, 1),
            on,
            dim_level,
            code if kind == "" else None,
        )
        ts_ms += params.interval_ms


def _spike_truth(
    params: SimParams, asset: AssetSpec, episode: _Episode, ts: list[int], power: list[float]
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


_DROPPING = frozenset({"offline", "short_gap"})


def _slot_ms(params: SimParams, asset: AssetSpec, k: int) -> int:
    return params.start_ms + asset.phase_ms + k * params.interval_ms


def _dim_at(params: SimParams, asset: AssetSpec, k: int) -> int:
    """The scheduled dim level of slot ``k`` (no RNG)."""
    local_ms = _slot_ms(params, asset, k) + asset.utc_offset_ms
    return _schedule(local_ms, _daylight(local_ms))


def _plan_new_episodes(
    params: SimParams,
    assets: list[AssetSpec],
    episodes: dict[str, list[_Episode]],
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
        n = _reading_count(params, asset)
        if first < margin or end + margin >= n:
            return False
        taken = episodes.get(asset.asset_id, [])
        return not any(first - margin <= e.end and e.first <= end + margin for e in taken)

    def add(asset: AssetSpec, episode: _Episode) -> None:
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
                add(a, _Episode(first, end, None, "site_spike"))
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
                first = rng.randint(margin, max(margin, _reading_count(params, asset) - margin))
                end = first + length
                code = rng.choice((OVER_VOLTAGE, UNDER_VOLTAGE)) if "voltage" in kind else None
                if free(asset, first, end) and _fits(params, asset, kind, (first, end), window):
                    add(asset, _Episode(first, end, code, kind))
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
        return all(_dim_at(params, asset, k) >= 30 for k in range(first, end))
    if kind in ("flicker", "flick"):
        # Lit for a window either side: no scheduled switching adds toggles.
        return all(_dim_at(params, asset, k) > 0 for k in range(first - window, end + window + 1))
    if kind == "baseline_spike":
        dims = [_dim_at(params, asset, k) for k in range(first, end + 3)]
        if not all(30 <= d <= 45 and abs(d - dims[0]) <= 2 for d in dims):
            return False
        # Each bucket of the episode was lit long enough before it to be learnt.
        for d in set(dims[: end - first]):
            bucket = d - d % BASELINE_BUCKET_PCT
            learnt = sum(
                1
                for k in range(first)
                if _dim_at(params, asset, k) // BASELINE_BUCKET_PCT * BASELINE_BUCKET_PCT == bucket
            )
            if learnt < 2 * BASELINE_WARMUP:
                return False
    return True


def _by_slot(
    params: SimParams, asset: AssetSpec, values: list[_Values]
) -> tuple[list[int], list[float]]:
    """Time and power per slot (power NaN in an injected gap)."""
    n = _reading_count(params, asset)
    slot_ts = [_slot_ms(params, asset, k) for k in range(n)]
    slot_power = [math.nan] * n
    for v in values:
        slot_power[(v[0] - slot_ts[0]) // params.interval_ms] = v[1]
    return slot_ts, slot_power


def _flicker_truth(
    params: SimParams, asset: AssetSpec, values: list[_Values]
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


def _site_defaults(sim: Simulation) -> dict[str, SiteDefaults]:
    params = sim.params
    capacity: dict[str, float] = {}
    demand_wh: dict[tuple[str, int], float] = {}
    for asset in sim.assets:
        capacity[asset.site_id] = capacity.get(asset.site_id, 0.0) + asset.rated_w
        values = sim._kept(asset)
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
        spike = sim._site_spikes.get(site_id)
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


_GOOD_FIELDS = (
    b'"building_id":"b","room_id":"r","ts":"2026-01-01T00:00:00.000Z","voltage_v":230,'
    b'"current_a":0.1,"lux":1,"on":true,"dim_level":50'
)
MALFORMED_SAMPLES: dict[str, bytes] = {
    "not_json": b"\x00\x01 definitely not json",
    "bad_type": b'{"v":1,"site_id":"s","asset_id":"a","power_w":"high",' + _GOOD_FIELDS + b"}",
    "missing_field": b'{"v":1,"site_id":"s","power_w":1,' + _GOOD_FIELDS + b"}",
    "bad_value": b'{"v":1,"site_id":"s","asset_id":"a","power_w":NaN,' + _GOOD_FIELDS + b"}",
    "bad_ts": (
        b'{"v":1,"site_id":"s","asset_id":"a","power_w":1,'
        + _GOOD_FIELDS.replace(b"2026-01-01", b"2999-01-01")
        + b"}"
    ),
    "bad_id": b'{"v":1,"site_id":"s","asset_id":"a#b","power_w":1,' + _GOOD_FIELDS + b"}",
    "too_deep": b'{"v":1,"x":' + b"[" * 6_000 + b"]" * 6_000 + b"}",
    "too_large": b"{" + b"x" * 900_000,
}
"""One bad record of each kind the decoder rejects, keyed by the reason code it must give."""


def with_malformed(
    records: Iterable[tuple[str, bytes]], every: int = 500
) -> Iterator[tuple[str, bytes]]:
    """`records` with the `MALFORMED_SAMPLES` spread among them (one after each `every`-th
    record, under that record's partition key); any left over come at the end."""
    samples = iter(MALFORMED_SAMPLES.values())
    partition_key = "site-x"
    for i, (partition_key, data) in enumerate(records):
        yield partition_key, data
        if i % every == every - 1:
            sample = next(samples, None)
            if sample is not None:
                yield partition_key, sample
    for sample in samples:
        yield partition_key, sample
