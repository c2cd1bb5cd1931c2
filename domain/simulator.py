"""Deterministic telemetry for a fleet of sites, with injected faults and spikes and the exact
ground truth the rules must find.

Everything follows from ``SimParams`` (``seed`` included): the fleet and the episode plan come
from one ``random.Random(seed)``; each asset's readings come from its own
``random.Random(f"{seed}/{asset_id}")`` drawn in reading order, so any pass over the data
(``records``, ``readings``, ``ground_truth``) sees the same values.

Each asset reports at ``start_ms + phase_ms + k * interval_ms`` for every k that falls in
``[start_ms, start_ms + duration_ms)``; ``0 <= phase_ms < interval_ms``.
Luminaires follow a day/night schedule in the site's local time with dimming by daylight and
+-2% noise, so normal power never exceeds ``rated_w * 1.02``, well below the spike threshold
``1.25 * rated_w``. Lux sensors draw about 0.5 W.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Literal

import msgspec

from domain.rules import DEFAULT_MAX_GAP_MS, DEFAULT_WINDOW_MS, MS_PER_HOUR, Limits
from domain.telemetry import SCHEMA_VERSION, Reading, Telemetry, encode_telemetry
from domain.timestamps import format_ts

SPIKE_THRESHOLD_FACTOR = 1.25
SENSOR_RATED_W = 0.5
STANDBY_W = 0.3
NOMINAL_VOLTAGE_V = 230.0
LUMINAIRE_FAULT_CODES = ("LAMP_FAILURE", "DRIVER_OVERTEMP", "FLICKER")
SENSOR_FAULT_CODES = ("SENSOR_STUCK", "LOW_BATTERY")
_DAY_MS = 86_400_000
_NOISE = 0.04  # full width of the uniform noise: +-2%


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
    duration_ms: int = _DAY_MS
    interval_ms: int = 60_000
    seed: int = 0
    fault_count: int = 4
    spike_count: int = 4
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    window_ms: int = DEFAULT_WINDOW_MS


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


class GroundTruth(msgspec.Struct, frozen=True):
    """What was injected and what usage must add up to; sorted by (asset, start)."""

    params: SimParams
    faults: list[FaultTruth]
    spikes: list[SpikeTruth]
    usage: list[UsageTruth]


def encode_ground_truth(truth: GroundTruth) -> bytes:
    """JSON bytes; floats round-trip exactly."""
    return msgspec.json.encode(truth)


def decode_ground_truth(data: bytes) -> GroundTruth:
    return msgspec.json.decode(data, type=GroundTruth)


class _Episode(msgspec.Struct, frozen=True, gc=False):
    """Readings ``first <= k < end`` of one asset carry a fault ``code`` or a spike."""

    first: int
    end: int
    code: str | None  # None: spike


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
        # Ties in time are broken by registry order; phase < interval keeps global time order.
        self._order = sorted(self.assets, key=lambda a: a.phase_ms)

    def reading_count(self, asset: AssetSpec) -> int:
        """How many readings ``asset`` sends in the period."""
        return _reading_count(self.params, asset)

    def records(self) -> Iterator[tuple[str, bytes]]:
        """``(partition_key = site_id, JSON telemetry)`` for every reading, in time order."""
        for asset, values in self._values_in_time_order():
            ts_ms, power_w, voltage_v, current_a, lux, on, dim_level, code = values
            telemetry = Telemetry(
                SCHEMA_VERSION,
                asset.site_id,
                asset.building_id,
                asset.room_id,
                asset.asset_id,
                format_ts(ts_ms),
                power_w,
                voltage_v,
                current_a,
                lux,
                on,
                dim_level,
                code,
            )
            yield asset.site_id, encode_telemetry(telemetry)

    def readings(self) -> Iterator[Reading]:
        """The same data as ``records``, already decoded."""
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
        rounds = max(self.reading_count(asset) for asset in self.assets)
        for _ in range(rounds):
            for asset, values in series:
                # Assets with a late phase have one reading fewer; their series just ends.
                value = next(values, None)
                if value is not None:
                    yield asset, value

    def _series(self, asset: AssetSpec) -> Iterator[_Values]:
        return _series(self.params, asset, self._episodes.get(asset.asset_id, []))

    def ground_truth(self) -> GroundTruth:
        """Faults, spikes and hourly usage, computed from the generated values."""
        params = self.params
        faults: list[FaultTruth] = []
        spikes: list[SpikeTruth] = []
        usage: list[UsageTruth] = []
        for asset in self.assets:
            values = list(self._series(asset))
            ts = [v[0] for v in values]
            power = [v[1] for v in values]
            for episode in self._episodes.get(asset.asset_id, []):
                if episode.code is not None:
                    faults.append(
                        FaultTruth(
                            asset.site_id,
                            asset.building_id,
                            asset.room_id,
                            asset.asset_id,
                            episode.code,
                            ts[episode.first],
                            ts[episode.end],
                        )
                    )
                else:
                    spikes.append(_spike_truth(params, asset, episode, ts, power))
            usage.extend(_usage_truth(params, asset, ts, power))
        return GroundTruth(params, faults, spikes, usage)


def _build_fleet(params: SimParams, rng: random.Random) -> list[AssetSpec]:
    assets: list[AssetSpec] = []
    phase_range = params.interval_ms
    for s in range(1, params.sites + 1):
        site_id = f"site-{s:04d}"
        utc_offset_ms = rng.randint(-8, 9) * MS_PER_HOUR
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
    hours = local_ms % _DAY_MS / MS_PER_HOUR
    return math.sin(math.pi * (hours - 6.0) / 12.0) if 6.0 <= hours < 18.0 else 0.0


def _schedule(local_ms: int, daylight: float) -> int:
    """Dim level of a luminaire: off at night, full at dawn/dusk, dimmed by daylight."""
    hour = local_ms % _DAY_MS // MS_PER_HOUR
    if hour < 6 or hour >= 22:
        return 0
    if hour < 8 or hour >= 18:
        return 80
    return max(30, round(100 - 70 * daylight))


def _series(params: SimParams, asset: AssetSpec, episodes: list[_Episode]) -> Iterator[_Values]:
    """The readings of one asset. Exactly two draws from the asset's RNG per reading."""
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
        noise = 1.0 + _NOISE * (u_power - 0.5)
        if not is_lamp:
            on, dim_level = True, 0
            power_w = rated_w * noise
            lux = 20.0 + 780.0 * daylight * (0.9 + 0.2 * u_other)
        elif episode is not None and code is None:
            on, dim_level = True, 100
            power_w = rated_w * (1.6 + 0.9 * u_power)
            lux = 900.0
        else:
            dim_level = _schedule(local_ms, daylight)
            on = dim_level > 0
            if code == "LAMP_FAILURE":
                power_w, lux = STANDBY_W * noise, 0.0
            elif on:
                power_w, lux = rated_w * dim_level / 100 * noise, dim_level * 6.0
            else:
                power_w, lux = STANDBY_W * noise, 0.0
        voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + 0.02 * (u_other - 0.5)), 1)
        power_w = round(power_w, 3)
        yield (
            ts_ms,
            power_w,
            voltage_v,
            round(power_w / voltage_v, 4),
            round(lux, 1),
            on,
            dim_level,
            code,
        )
        ts_ms += params.interval_ms


def _spike_truth(
    params: SimParams, asset: AssetSpec, episode: _Episode, ts: list[int], power: list[float]
) -> SpikeTruth:
    threshold_w = spike_threshold_w(asset)
    excess_wh = 0.0
    for k in range(episode.first, episode.end):
        if ts[k + 1] - ts[k] <= params.max_gap_ms:
            excess_wh += (power[k] - threshold_w) * (ts[k + 1] - ts[k]) / MS_PER_HOUR
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
            wh[window_start_ms] = wh.get(window_start_ms, 0.0) + (
                power[k] * (piece_end - cursor) / MS_PER_HOUR
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
