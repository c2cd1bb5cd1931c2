"""A realistic fleet, generated independently of the rules: what `evaluate --realistic` runs.

Each lamp has a true power that is piecewise constant (schedule, dimming, occupancy switching,
injected spikes, self-cycling) and is read at irregular intervals of 10-40 s; readings carry
+-1 % measurement noise, part of the fleet carries an exact cumulative energy counter (v2,
1 mWh resolution, which DALI-2 Part 252's scale factor allows). Deliveries: 1 % duplicated,
each delayed 0-5 s (so records arrive out of order), arrival = delivery time. A continuous
run: the clock follows the arrivals, no idle close. Ground truth: injected episodes, and the
exact energy of every asset-hour and day.

Schedule (UTC): on at dim 100 from 18:00, dim 40 from 23:00, dim 80 from 05:00, off 07:00.
Occupancy lamps (``occupancy_share``) are off from 23:00 to 05:00 except after motion: on at
dim 60 for a hold of 3-10 minutes, then off for 20 s to 5 minutes, all night.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator

import msgspec

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from core.errors import ConfigError
from domain.registry import Asset, Registry, SiteDefaults
from domain.telemetry import Reading, encode_reading

STANDBY_W = 0.3
RATED_W = 100.0
START_MS = 1_795_737_600_000  # 2026-11-27T00:00Z


REFERENCE_LAMPS = 120
"""The episode counts below are for a fleet of this many lamps (4 sites x 30); a smaller fleet
gets proportionally fewer (at least one of each kind), a larger one the same."""
MIN_HOURS = 24.0
"""The episodes lie across the first day (01:00-23:00): a shorter run could not see them."""


class RealisticParams(msgspec.Struct, frozen=True):
    sites: int = 4
    lamps_per_site: int = 30
    hours: float = 26.0
    seed: int = 1
    counter_share: float = 0.4
    occupancy_share: float = 0.3
    duplicate_share: float = 0.01
    max_delay_ms: int = 5_000
    spikes: int = 12
    baseline_spikes: int = 8
    blips: int = 60
    faults: int = 12
    flickers: int = 6
    offlines: int = 8


class Episode(msgspec.Struct, frozen=True):
    """An injected anomaly: ``kind`` (``energy_spike:<rule>``, ``fault_code``, ``flicker``,
    ``offline``, ``blip``), asset, code, true start and end."""

    kind: str
    asset_id: str
    code: str
    start_ms: int
    end_ms: int


class Lamp(msgspec.Struct, frozen=True):
    site_id: str
    asset_id: str
    counter: bool
    occupancy: bool


class Fleet:
    """Lamps, their true power segments, the episodes and the readings."""

    def __init__(self, params: RealisticParams) -> None:
        self.params = params
        if params.sites < 1 or params.lamps_per_site < 1:
            raise ConfigError("the realistic fleet needs at least one site and one lamp per site")
        if params.hours < MIN_HOURS:
            raise ConfigError(
                f"the realistic fleet needs at least {MIN_HOURS:g} hours (--hours): its episodes "
                "lie across the first day, 01:00-23:00"
            )
        rng = random.Random(params.seed)
        self.start_ms = START_MS
        self.end_ms = START_MS + int(params.hours * HOUR_MS)
        self.lamps = [
            Lamp(
                f"site-{s}",
                f"site-{s}-l{n:03d}",
                rng.random() < params.counter_share,
                rng.random() < params.occupancy_share,
            )
            for s in range(params.sites)
            for n in range(params.lamps_per_site)
        ]
        self.episodes: list[Episode] = []
        self._plan(rng)
        self.first_reading_ms: dict[str, int] = {}
        """Each lamp's first reading (set by ``readings``): no energy is known before it."""
        self.segments = {lamp.asset_id: self._segments(lamp) for lamp in self.lamps}

    # -- plan ------------------------------------------------------------------------------

    def _plan(self, rng: random.Random) -> None:
        busy: dict[str, list[tuple[int, int]]] = {}
        day = self.start_ms

        def place(  # noqa: PLR0917 -- a local helper called with the plan's columns
            kind: str,
            code: str,
            lo_h: float,
            hi_h: float,
            min_ms: int,
            max_ms: int,
            lamps: list[Lamp],
        ) -> None:
            for _ in range(1000 if lamps else 0):
                lamp = rng.choice(lamps)
                start = day + int(rng.uniform(lo_h, hi_h) * HOUR_MS)
                end = start + rng.randrange(min_ms, max_ms)
                taken = busy.setdefault(lamp.asset_id, [])
                margin = 40 * MINUTE_MS
                if all(end + margin < a or b + margin < start for a, b in taken):
                    taken.append((start, end))
                    self.episodes.append(Episode(kind, lamp.asset_id, code, start, end))
                    return
            raise ConfigError(
                f"the realistic fleet has too few lamps to place its {kind} episodes apart "
                f"({len(self.lamps)} lamps, {len(lamps)} that can hold one): use more --sites "
                "or --lamps"
            )

        p = self.params
        steady = [lamp for lamp in self.lamps if not lamp.occupancy]
        scale = min(1.0, len(self.lamps) / REFERENCE_LAMPS)

        def count(episodes: int) -> int:
            return max(1, round(episodes * scale)) if episodes else 0

        for _ in range(count(p.spikes)):  # full power 18:00-23:00: above the rated threshold
            place(
                "energy_spike:power_above_threshold",
                "",
                18.5,
                22.5,
                3 * MINUTE_MS,
                8 * MINUTE_MS,
                steady,
            )
        for _ in range(count(p.baseline_spikes)):  # dim 40 after 01:00: above the learnt baseline
            place(
                "energy_spike:power_above_baseline",
                "",
                1.0,
                4.5,
                3 * MINUTE_MS,
                8 * MINUTE_MS,
                steady,
            )
        for _ in range(count(p.faults)):
            place(
                "fault_code",
                "DRIVER_OVERTEMP",
                1.0,
                23.0,
                10 * MINUTE_MS,
                30 * MINUTE_MS,
                self.lamps,
            )
        for _ in range(count(p.flickers)):  # while on at full power
            place("flicker", "flicker", 18.5, 22.0, 15 * MINUTE_MS, 30 * MINUTE_MS, steady)
        for _ in range(count(p.offlines)):
            place("offline", "offline", 1.0, 23.0, 30 * MINUTE_MS, 60 * MINUTE_MS, self.lamps)
        for _ in range(count(p.blips)):  # mixed dim levels: 40 (night), 80 (dawn), 100 (evening)
            lo, hi = rng.choice(((0.2, 4.5), (5.2, 6.8), (18.2, 22.8)))
            place("blip", "", lo, hi, 1, 2, steady)
        self._by_asset: dict[str, list[Episode]] = {}
        for e in self.episodes:
            self._by_asset.setdefault(e.asset_id, []).append(e)

    # -- true power --------------------------------------------------------------------------

    def _segments(self, lamp: Lamp) -> list[tuple[int, float, int, bool]]:
        """``(start_ms, power_w, dim_level, on)`` from each start until the next one."""
        rng = random.Random(f"{self.params.seed}/{lamp.asset_id}/power")
        out: list[tuple[int, float, int, bool]] = []
        t = self.start_ms
        while t < self.end_ms:
            hour = (t % DAY_MS) / HOUR_MS
            dim = _scheduled_dim(hour)
            if lamp.occupancy and (hour >= 23 or hour < 5):
                on = rng.random() < 0.5 if not out else not out[-1][3]
                hold = (
                    rng.randrange(3 * MINUTE_MS, 10 * MINUTE_MS)
                    if on
                    else rng.randrange(20_000, 5 * MINUTE_MS)
                )
                end = min(t + hold, _next_change(t))
                out.append((t, RATED_W * 0.6 if on else STANDBY_W, 60 if on else 0, on))
                t = end
                continue
            out.append((t, RATED_W * dim / 100 if dim else STANDBY_W, dim, dim > 0))
            t = _next_change(t)
        for e in self._by_asset.get(lamp.asset_id, []):
            if e.kind.startswith("energy_spike"):
                out = _overlay(out, e.start_ms, e.end_ms, lambda s: (s[1] * 2.0, s[2], s[3]))
            elif e.kind == "flicker":
                for k in range((e.end_ms - e.start_ms) // 60_000):
                    off_ms = e.start_ms + k * 60_000 + 30_000
                    out = _overlay(out, off_ms, off_ms + 30_000, lambda s: (STANDBY_W, 0, False))
        return out

    def power_at(self, asset_id: str, ts_ms: int) -> tuple[float, int, bool]:
        segments = self.segments[asset_id]
        lo, hi = 0, len(segments) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if segments[mid][0] <= ts_ms:
                lo = mid
            else:
                hi = mid - 1
        _, power_w, dim, on = segments[lo]
        return power_w, dim, on

    def energy_wh(self, asset_id: str, from_ms: int, to_ms: int) -> float:
        """The exact energy of ``[from_ms, to_ms)``."""
        segments = self.segments[asset_id]
        total = 0.0
        for i, (start, power_w, _, _) in enumerate(segments):
            end = segments[i + 1][0] if i + 1 < len(segments) else self.end_ms
            lo, hi = max(start, from_ms), min(end, to_ms)
            if hi > lo:
                total += power_w * (hi - lo) / HOUR_MS
        return total

    # -- readings ------------------------------------------------------------------------------

    def readings(self, lamp: Lamp) -> Iterator[Reading]:
        rng = random.Random(f"{self.params.seed}/{lamp.asset_id}/readings")
        episodes = self._by_asset.get(lamp.asset_id, [])
        t = self.start_ms + rng.randrange(0, 10_000)
        self.first_reading_ms[lamp.asset_id] = t
        cumulative_wh, last_t = 0.0, self.start_ms
        blips = sorted(e.start_ms for e in episodes if e.kind == "blip")
        offline = [(e.start_ms, e.end_ms) for e in episodes if e.kind == "offline"]
        faults = [(e.start_ms, e.end_ms) for e in episodes if e.kind == "fault_code"]
        while t < self.end_ms:
            if blips and blips[0] <= t:
                t = blips.pop(0)  # read at the blip: the one reading that sees it
                blip = True
            else:
                blip = False
            cumulative_wh += self.energy_wh(lamp.asset_id, last_t, t)
            last_t = t
            if not any(a <= t < b for a, b in offline):
                power_w, dim, on = self.power_at(lamp.asset_id, t)
                if blip:
                    power_w *= 1.8
                power_w *= 1.0 + 0.02 * (rng.random() - 0.5)
                code = "DRIVER_OVERTEMP" if any(a <= t < b for a, b in faults) else None
                voltage_v = round(230.0 * (1.0 + 0.02 * (rng.random() - 0.5)), 1)
                yield Reading(
                    lamp.site_id,
                    "b1",
                    "r1",
                    lamp.asset_id,
                    t,
                    round(power_w, 3),
                    voltage_v,
                    round(power_w / voltage_v, 4),
                    0.0,
                    on,
                    dim,
                    code,
                    round(cumulative_wh, 3) if lamp.counter else None,
                )
            t += rng.randrange(10_000, 40_001)

    def deliveries(self) -> list[tuple[str, bytes, int, int]]:
        """Every delivery ``(partition key, bytes, arrival_ms, event ts_ms)`` in arrival order
        (duplicates delivered twice, each copy delayed on its own)."""
        rng = random.Random(f"{self.params.seed}/delivery")
        out: list[tuple[int, int, str, bytes, int]] = []
        n = 0
        for lamp in self.lamps:
            for reading in self.readings(lamp):
                data = encode_reading(reading)
                copies = 2 if rng.random() < self.params.duplicate_share else 1
                for _ in range(copies):
                    n += 1
                    arrival = reading.ts_ms + rng.randrange(0, self.params.max_delay_ms + 1)
                    out.append((arrival, n, reading.site_id, data, reading.ts_ms))
        return [
            (pk, data, arrival, ts_ms)
            for arrival, _, pk, data, ts_ms in heapq.nsmallest(len(out), out)
        ]

    def registry(self) -> Registry:
        assets = [
            Asset(lamp.site_id, "b1", "r1", lamp.asset_id, "luminaire", RATED_W)
            for lamp in self.lamps
        ]
        sites = [SiteDefaults(f"site-{s}") for s in range(self.params.sites)]
        return Registry(assets, sites)


def _scheduled_dim(hour: float) -> int:
    if hour >= 23 or hour < 5:
        return 40
    if hour < 7:
        return 80
    if hour >= 18:
        return 100
    return 0


def _next_change(t: int) -> int:
    day = t - t % DAY_MS
    for h in (5, 7, 18, 23, 29):
        change = day + h * HOUR_MS
        if change > t:
            return change
    raise AssertionError("unreachable")


def _overlay(
    segments: list[tuple[int, float, int, bool]],
    start_ms: int,
    end_ms: int,
    change: object,
) -> list[tuple[int, float, int, bool]]:
    """Segments with ``change(segment) -> (power, dim, on)`` applied within [start, end)."""
    assert callable(change)
    out: list[tuple[int, float, int, bool]] = []
    for i, seg in enumerate(segments):
        end = segments[i + 1][0] if i + 1 < len(segments) else 2**62
        pieces = [
            (seg[0], min(end, start_ms)),
            (max(seg[0], start_ms), min(end, end_ms)),
            (max(seg[0], end_ms), end),
        ]
        for k, (a, b) in enumerate(pieces):
            if b <= a:
                continue
            if k == 1:
                power_w, dim, on = change(seg)
                out.append((a, power_w, dim, on))
            else:
                out.append((a, seg[1], seg[2], seg[3]))
    return out
