"""Per-asset telemetry series: fixed-interval rollups of the readings, and their query points.

A `SeriesAcc` (`domain.series_acc`) holds one asset's readings of one interval: for each
measured quantity (`SERIES_METRICS`) the sum (for the mean), minimum, maximum and last value
(the value of the latest reading), the on count (for the on-fraction) and the reading count.
Adding a reading (`acc + reading`) returns the accumulator with it counted: a windowed table
keeps one per asset and window.

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

from domain.series_acc import SeriesAcc
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
        acc.summary(),
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
