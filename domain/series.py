"""Per-asset telemetry series: fixed-interval rollups of the readings, and their query points.

A `SeriesAcc` holds one asset's readings of one interval: for each measured quantity
(`SERIES_METRICS`) the sum (for the mean), minimum, maximum and last value (the value of the
latest reading), the on count (for the on-fraction) and the reading count. Adding a reading
(`acc + reading`) updates the accumulator in place and returns it: a windowed table keeps one
per asset and window, and nothing is allocated per reading.

Which readings count is the rules' choice, made by the caller: each asset's readings in
increasing time order, a duplicate or an older one skipped (`lighting.series`). The same
readings in the same windows give the same rollups, so a point re-written after a replay or a
crash carries the same values at the same identity (table, dimensions, measure name, window
start) and overwrites its earlier copy.

A closed window becomes a `TelemetryRollup` (`rollup_of`) and that becomes one query point
(`series_point`): table `series`, dimensions site, building, room, asset, measure name
`telemetry_<interval>` (`telemetry_1m`, `telemetry_1h`), time = window start. The fine
interval is a setting; the hourly downsample is the same rollup over the hour, kept longer
(the tiers: `SERIES_HOT`, `SERIES_COLD`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Literal

import msgspec

from domain.telemetry import Reading

SERIES_TABLE: Final = "series"
"""The query-model table (InfluxDB measurement) of the telemetry series."""
HOUR_MS: Final = 3_600_000
DEFAULT_INTERVAL_MS: Final = 60_000

SERIES_METRICS: Final = ("power_w", "voltage_v", "current_a", "lux", "dim_level")
"""The quantities rolled up, by their `Reading` field names."""

Tier = Literal["hot", "cold"]
SERIES_HOT: Final[Tier] = "hot"
"""The fine series: kept for days (InfluxDB short retention policy, Timestream memory store)."""
SERIES_COLD: Final[Tier] = "cold"
"""The hourly downsample: kept for a year and more (long retention policy, magnetic store)."""


def check_interval_ms(interval_ms: int) -> int:
    """`interval_ms` if it is a valid fine interval: a whole number of seconds that divides
    the hour and is shorter than it (so every hour is whole intervals, and the hourly
    downsample aggregates exactly the fine points of its hour); else `ValueError`."""
    if (
        interval_ms < 1_000
        or interval_ms % 1_000
        or HOUR_MS % interval_ms
        or interval_ms >= HOUR_MS
    ):
        raise ValueError(
            f"a series interval must be whole seconds dividing the hour, shorter than it; "
            f"got {interval_ms} ms"
        )
    return interval_ms


def interval_name(interval_ms: int) -> str:
    """`1h`, `<n>m` for whole minutes, else `<n>s`: the interval part of the measure name."""
    if interval_ms % HOUR_MS == 0:
        return f"{interval_ms // HOUR_MS}h"
    if interval_ms % 60_000 == 0:
        return f"{interval_ms // 60_000}m"
    return f"{interval_ms // 1_000}s"


def measure_name(interval_ms: int) -> str:
    """`telemetry_<interval>`, e.g. `telemetry_1m`, `telemetry_1h`."""
    return f"telemetry_{interval_name(interval_ms)}"


class SeriesAcc(msgspec.Struct, gc=False, array_like=True):
    """One asset's readings in one interval (see the module docstring). `count == 0` means
    empty: its minima, maxima and lasts are meaningless until the first reading. Encoded as
    an array (`array_like`): every open window's accumulator is in each state snapshot."""

    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    count: int = 0
    on_count: int = 0
    last_ts_ms: int = 0
    power_w_sum: float = 0.0
    power_w_min: float = 0.0
    power_w_max: float = 0.0
    power_w_last: float = 0.0
    voltage_v_sum: float = 0.0
    voltage_v_min: float = 0.0
    voltage_v_max: float = 0.0
    voltage_v_last: float = 0.0
    current_a_sum: float = 0.0
    current_a_min: float = 0.0
    current_a_max: float = 0.0
    current_a_last: float = 0.0
    lux_sum: float = 0.0
    lux_min: float = 0.0
    lux_max: float = 0.0
    lux_last: float = 0.0
    dim_level_sum: int = 0
    dim_level_min: int = 0
    dim_level_max: int = 0
    dim_level_last: int = 0

    def __add__(self, reading: Reading) -> SeriesAcc:
        """Count `reading` (in place) and return self. The caller passes each asset's
        readings in increasing time order, so the latest is the last one added."""
        p, v, c, x, d = (
            reading.power_w,
            reading.voltage_v,
            reading.current_a,
            reading.lux,
            reading.dim_level,
        )
        if self.count == 0:
            self.site_id = reading.site_id
            self.building_id = reading.building_id
            self.room_id = reading.room_id
            self.power_w_min = self.power_w_max = p
            self.voltage_v_min = self.voltage_v_max = v
            self.current_a_min = self.current_a_max = c
            self.lux_min = self.lux_max = x
            self.dim_level_min = self.dim_level_max = d
        else:
            # Explicit comparisons: min()/max() calls cost more on the record path.
            if p < self.power_w_min:
                self.power_w_min = p
            elif p > self.power_w_max:
                self.power_w_max = p
            if v < self.voltage_v_min:
                self.voltage_v_min = v
            elif v > self.voltage_v_max:
                self.voltage_v_max = v
            if c < self.current_a_min:
                self.current_a_min = c
            elif c > self.current_a_max:
                self.current_a_max = c
            if x < self.lux_min:
                self.lux_min = x
            elif x > self.lux_max:
                self.lux_max = x
            if d < self.dim_level_min:
                self.dim_level_min = d
            elif d > self.dim_level_max:
                self.dim_level_max = d
        self.count += 1
        if reading.on:
            self.on_count += 1
        self.last_ts_ms = reading.ts_ms
        self.power_w_sum += p
        self.voltage_v_sum += v
        self.current_a_sum += c
        self.lux_sum += x
        self.dim_level_sum += d
        self.power_w_last = p
        self.voltage_v_last = v
        self.current_a_last = c
        self.lux_last = x
        self.dim_level_last = d
        return self

    def merge(self, later: SeriesAcc) -> SeriesAcc:
        """Fold in `later` (in place) and return self: the accumulator of both intervals'
        readings, `later`'s all newer than self's (its lasts win). How the hourly downsample
        is made from the closed fine intervals, one window update per reading instead of two.
        Counts, minima, maxima and lasts are exact; the sums are added per interval rather
        than per reading, so a mean may differ from the reading-by-reading one in its last
        bits."""
        if later.count == 0:
            return self
        if self.count == 0:
            self.site_id = later.site_id
            self.building_id = later.building_id
            self.room_id = later.room_id
            self.power_w_min = later.power_w_min
            self.power_w_max = later.power_w_max
            self.voltage_v_min = later.voltage_v_min
            self.voltage_v_max = later.voltage_v_max
            self.current_a_min = later.current_a_min
            self.current_a_max = later.current_a_max
            self.lux_min = later.lux_min
            self.lux_max = later.lux_max
            self.dim_level_min = later.dim_level_min
            self.dim_level_max = later.dim_level_max
        else:
            self.power_w_min = min(self.power_w_min, later.power_w_min)
            self.power_w_max = max(self.power_w_max, later.power_w_max)
            self.voltage_v_min = min(self.voltage_v_min, later.voltage_v_min)
            self.voltage_v_max = max(self.voltage_v_max, later.voltage_v_max)
            self.current_a_min = min(self.current_a_min, later.current_a_min)
            self.current_a_max = max(self.current_a_max, later.current_a_max)
            self.lux_min = min(self.lux_min, later.lux_min)
            self.lux_max = max(self.lux_max, later.lux_max)
            self.dim_level_min = min(self.dim_level_min, later.dim_level_min)
            self.dim_level_max = max(self.dim_level_max, later.dim_level_max)
        self.count += later.count
        self.on_count += later.on_count
        self.last_ts_ms = later.last_ts_ms
        self.power_w_sum += later.power_w_sum
        self.voltage_v_sum += later.voltage_v_sum
        self.current_a_sum += later.current_a_sum
        self.lux_sum += later.lux_sum
        self.dim_level_sum += later.dim_level_sum
        self.power_w_last = later.power_w_last
        self.voltage_v_last = later.voltage_v_last
        self.current_a_last = later.current_a_last
        self.lux_last = later.lux_last
        self.dim_level_last = later.dim_level_last
        return self


class TelemetryRollup(msgspec.Struct, frozen=True, gc=False):
    """One asset's telemetry over one interval `[window_start_ms, window_start_ms +
    window_ms)`: per quantity of `SERIES_METRICS` its mean, min, max and last (`<q>_mean`,
    ...); `on_fraction` is the share of readings with the lamp on; `readings` their count."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    window_start_ms: int
    window_ms: int
    readings: int
    on_fraction: float
    last_ts_ms: int
    stats: dict[str, float]
    """`<quantity>_<mean|min|max|last>` for every quantity of `SERIES_METRICS`."""

    @property
    def event_id(self) -> str:
        return f"series#{self.asset_id}#{interval_name(self.window_ms)}#{self.window_start_ms}"


def rollup_of(
    asset_id: str, window_start_ms: int, window_ms: int, acc: SeriesAcc
) -> TelemetryRollup:
    """The rollup of a closed window's accumulator (`acc.count >= 1`)."""
    n = acc.count
    # Spelled out rather than looped over SERIES_METRICS with getattr: it runs once per asset
    # and interval, on the record path.
    stats = {
        "power_w_mean": acc.power_w_sum / n,
        "power_w_min": acc.power_w_min,
        "power_w_max": acc.power_w_max,
        "power_w_last": acc.power_w_last,
        "voltage_v_mean": acc.voltage_v_sum / n,
        "voltage_v_min": acc.voltage_v_min,
        "voltage_v_max": acc.voltage_v_max,
        "voltage_v_last": acc.voltage_v_last,
        "current_a_mean": acc.current_a_sum / n,
        "current_a_min": acc.current_a_min,
        "current_a_max": acc.current_a_max,
        "current_a_last": acc.current_a_last,
        "lux_mean": acc.lux_sum / n,
        "lux_min": acc.lux_min,
        "lux_max": acc.lux_max,
        "lux_last": acc.lux_last,
        "dim_level_mean": acc.dim_level_sum / n,
        "dim_level_min": float(acc.dim_level_min),
        "dim_level_max": float(acc.dim_level_max),
        "dim_level_last": float(acc.dim_level_last),
    }
    return TelemetryRollup(
        acc.site_id,
        acc.building_id,
        acc.room_id,
        asset_id,
        window_start_ms,
        window_ms,
        n,
        acc.on_count / n,
        acc.last_ts_ms,
        stats,
    )


def direct_rollups(
    readings: Iterable[Reading], window_ms: int
) -> dict[tuple[str, int], TelemetryRollup]:
    """The rollups of `readings` computed directly, `(asset_id, window_start_ms)` -> rollup:
    per asset, the readings strictly newer than every earlier one of that asset (the ones the
    rules count), grouped by window. The reference the accumulator is tested against."""
    kept: dict[tuple[str, int], list[Reading]] = {}
    newest: dict[str, int] = {}
    for r in readings:
        if r.asset_id in newest and r.ts_ms <= newest[r.asset_id]:
            continue
        newest[r.asset_id] = r.ts_ms
        kept.setdefault((r.asset_id, r.ts_ms - r.ts_ms % window_ms), []).append(r)
    out: dict[tuple[str, int], TelemetryRollup] = {}
    for (asset_id, start_ms), group in kept.items():
        stats: dict[str, float] = {}
        for q in SERIES_METRICS:
            values = [float(getattr(r, q)) for r in group]
            stats[f"{q}_mean"] = math.fsum(values) / len(values)
            stats[f"{q}_min"] = min(values)
            stats[f"{q}_max"] = max(values)
            stats[f"{q}_last"] = values[-1]
        first = group[0]
        out[(asset_id, start_ms)] = TelemetryRollup(
            first.site_id,
            first.building_id,
            first.room_id,
            asset_id,
            start_ms,
            window_ms,
            len(group),
            sum(1 for r in group if r.on) / len(group),
            group[-1].ts_ms,
            stats,
        )
    return out


def series_tier(window_ms: int) -> Tier:
    """The hourly downsample is cold; every finer interval is hot."""
    return SERIES_COLD if window_ms >= HOUR_MS else SERIES_HOT


def point_tier(table: str, measure: str) -> Tier | None:
    """The tier of a query point by its table and measure name; None for points that are not
    of the series (events, usage)."""
    if table != SERIES_TABLE:
        return None
    return SERIES_COLD if measure == measure_name(HOUR_MS) else SERIES_HOT
