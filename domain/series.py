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
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Literal, cast

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


_STATS: Final = 4 * len(SERIES_METRICS)
"""Per quantity of `SERIES_METRICS`, in order: sum, min, max, last."""
_COUNT: Final = _STATS
_ON_COUNT: Final = _STATS + 1
_LAST_TS: Final = _STATS + 2
_ZEROS: Final = array("d", bytes(8 * (_STATS + 3)))
"""Copied by every new accumulator: an array initializer gives an exact-size buffer (from
bytes, the buffer is over-allocated by a sixteenth plus three items)."""
_IDS_AND_COUNTS: Final = 6
"""site_id, building_id, room_id, count, on_count, last_ts_ms: the head of the stored form."""


if TYPE_CHECKING:
    _Doubles = array[float]
else:
    _Doubles = array  # not subscriptable at run time before Python 3.12


class SeriesAcc(_Doubles):
    """One asset's readings in one interval (see the module docstring). `count == 0` means
    empty: its minima, maxima and lasts are meaningless until the first reading.

    The accumulator is itself an array of 23 C doubles: per quantity sum, min, max, last (the
    20 statistics, `stats`), then the reading count, the on count and the latest reading's
    time; only the ids are object fields. A table holds one accumulator per asset and open
    interval: a float object is 24 bytes beside its 8 of value, a time in ms an int of 32, and
    an object holding an array 88 more than the array itself. A double holds every value
    exactly (readings are doubles; `dim_level` is an int of 0..100, and its sum stays far below
    2**53, as do counts and times in ms), and every operation is the one the float and int
    fields had, in the same order, so rollups are the same to the bit.

    Stored in a table's snapshot (`snapshot_form`) as the array of 26 values the accumulator
    was stored as when its statistics were fields: the ids, the counts, the statistics, the
    `dim_level` ones as ints; `from_snapshot_form` reads that form (from either)."""

    __slots__ = ("building_id", "room_id", "site_id")

    site_id: str
    building_id: str
    room_id: str

    def __new__(cls) -> SeriesAcc:
        acc = cast(SeriesAcc, array.__new__(cls, "d", _ZEROS))
        acc.site_id = acc.building_id = acc.room_id = ""
        return acc

    @property
    def count(self) -> int:  # type: ignore[override]  # an array's count(x) is of no use here
        return int(self[_COUNT])

    @property
    def on_count(self) -> int:
        return int(self[_ON_COUNT])

    @property
    def last_ts_ms(self) -> int:
        return int(self[_LAST_TS])

    @property
    def stats(self) -> array[float]:
        """The 20 statistics (a copy)."""
        return array("d", self[:_STATS])

    def __repr__(self) -> str:
        return f"SeriesAcc({self.snapshot_form()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesAcc):
            return NotImplemented
        return self.snapshot_form() == other.snapshot_form()

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # mutable: never a dict key

    def __add__(self, reading: Reading) -> SeriesAcc:  # type: ignore[override]
        """Count `reading` (in place) and return self. The caller passes each asset's
        readings in increasing time order, so the latest is the last one added."""
        s = self
        p, v, c, x, d = (
            reading.power_w,
            reading.voltage_v,
            reading.current_a,
            reading.lux,
            reading.dim_level,
        )
        if s[20] == 0.0:
            self.site_id = reading.site_id
            self.building_id = reading.building_id
            self.room_id = reading.room_id
            s[1] = s[2] = p
            s[5] = s[6] = v
            s[9] = s[10] = c
            s[13] = s[14] = x
            s[17] = s[18] = d
        else:
            # Explicit comparisons: min()/max() calls cost more on the record path.
            if p < s[1]:
                s[1] = p
            elif p > s[2]:
                s[2] = p
            if v < s[5]:
                s[5] = v
            elif v > s[6]:
                s[6] = v
            if c < s[9]:
                s[9] = c
            elif c > s[10]:
                s[10] = c
            if x < s[13]:
                s[13] = x
            elif x > s[14]:
                s[14] = x
            if d < s[17]:
                s[17] = d
            elif d > s[18]:
                s[18] = d
        s[20] += 1.0  # _COUNT
        if reading.on:
            s[21] += 1.0  # _ON_COUNT
        s[22] = reading.ts_ms  # _LAST_TS
        s[0] += p
        s[4] += v
        s[8] += c
        s[12] += x
        s[16] += d
        s[3] = p
        s[7] = v
        s[11] = c
        s[15] = x
        s[19] = d
        return self

    def __iadd__(self, reading: Reading) -> SeriesAcc:  # type: ignore[override]
        """`acc += reading` counts it too (an array's own `+=` would extend it)."""
        return self + reading

    def merge(self, later: SeriesAcc) -> SeriesAcc:
        """Fold in `later` (in place) and return self: the accumulator of both intervals'
        readings, `later`'s all newer than self's (its lasts win). How the hourly downsample
        is made from the closed fine intervals, one window update per reading instead of two.
        Counts, minima, maxima and lasts are exact; the sums are added per interval rather
        than per reading, so a mean may differ from the reading-by-reading one in its last
        bits."""
        s, t = self, later
        if t[_COUNT] == 0.0:
            return self
        if s[_COUNT] == 0.0:
            self.site_id = later.site_id
            self.building_id = later.building_id
            self.room_id = later.room_id
            for i in range(1, _STATS, 4):
                s[i] = t[i]
                s[i + 1] = t[i + 1]
        else:
            for i in range(1, _STATS, 4):
                s[i] = min(s[i], t[i])
                s[i + 1] = max(s[i + 1], t[i + 1])
        s[_COUNT] += t[_COUNT]
        s[_ON_COUNT] += t[_ON_COUNT]
        s[_LAST_TS] = t[_LAST_TS]
        for i in range(0, _STATS, 4):
            s[i] += t[i]
            s[i + 3] = t[i + 3]
        return self

    def snapshot_form(self) -> list[str | int | float]:
        """The stored form: see the class docstring."""
        return [
            self.site_id,
            self.building_id,
            self.room_id,
            int(self[_COUNT]),
            int(self[_ON_COUNT]),
            int(self[_LAST_TS]),
            *self[:16],
            *(int(value) for value in self[16:_STATS]),
        ]

    @classmethod
    def from_snapshot_form(cls, form: object) -> SeriesAcc:
        """The accumulator of a stored form (`snapshot_form`; a shorter one takes the defaults
        for its missing trailing values); `ValueError` for anything else."""
        if not isinstance(form, list) or len(form) > _IDS_AND_COUNTS + _STATS:
            raise ValueError("a series accumulator is an array of at most 26 values")
        head = form[:_IDS_AND_COUNTS]
        head += ["", "", "", 0, 0, 0][len(head) :]
        if not (all(type(i) is str for i in head[:3]) and all(type(n) is int for n in head[3:])):
            raise ValueError("a series accumulator starts with 3 ids and 3 integers")
        values = form[_IDS_AND_COUNTS:]
        if not all(type(value) in (int, float) for value in values):
            raise ValueError("a series accumulator's statistics are numbers")
        acc = cls()
        acc.site_id, acc.building_id, acc.room_id = head[:3]
        acc[_COUNT], acc[_ON_COUNT], acc[_LAST_TS] = head[3:]
        acc[: len(values)] = array("d", values)
        return acc


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
    n = int(acc[_COUNT])
    s = acc
    # Spelled out rather than looped over SERIES_METRICS: it runs once per asset and
    # interval, on the record path.
    stats = {
        "power_w_mean": s[0] / n,
        "power_w_min": s[1],
        "power_w_max": s[2],
        "power_w_last": s[3],
        "voltage_v_mean": s[4] / n,
        "voltage_v_min": s[5],
        "voltage_v_max": s[6],
        "voltage_v_last": s[7],
        "current_a_mean": s[8] / n,
        "current_a_min": s[9],
        "current_a_max": s[10],
        "current_a_last": s[11],
        "lux_mean": s[12] / n,
        "lux_min": s[13],
        "lux_max": s[14],
        "lux_last": s[15],
        "dim_level_mean": s[16] / n,
        "dim_level_min": s[17],
        "dim_level_max": s[18],
        "dim_level_last": s[19],
    }
    return TelemetryRollup(
        acc.site_id,
        acc.building_id,
        acc.room_id,
        asset_id,
        window_start_ms,
        window_ms,
        n,
        int(acc[_ON_COUNT]) / n,
        int(acc[_LAST_TS]),
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
