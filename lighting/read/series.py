"""Reads of the telemetry series with InfluxQL: per asset, at the fine interval (the hot tier)
or per hour (the cold tier), for one asset, room, building or site.

The sink writes each rollup as a point of measurement `series` with tags site, building, room,
asset and `measure=telemetry_<interval>`, the fine ones into retention policy `series_hot`
and the hourly ones into `series_cold` (`lighting.influx`). A query reads one tier as stored:
no re-aggregation, so a row is exactly one stored rollup.

The work of one page is bounded, whatever the range asked for: the range may span at most
`MAX_WINDOWS` intervals (refused before any statement runs), a page runs one statement that
returns at most `limit` (<= `MAX_PAGE_ROWS`) rows plus the rows of its first instant already
returned (at most `MAX_SERIES`: more assets at one instant is refused, filter by room or
building). Rows come ordered by time, then by series (InfluxDB's order for equal times); the
cursor carries the time of the page's last row and how many rows of that time were returned,
so the next page reads on from there (`OFFSET` within that instant only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from core.clock import HOUR_MS
from domain.series import SERIES_COLD, SERIES_HOT, SERIES_METRICS, Tier, measure_name
from lighting.read.cursors import Cursors, query_id
from lighting.read.energy import MAX_TIME_MS, quote
from lighting.read.rows import Page, QueryError
from sinks.influxhttp import InfluxHTTP

SeriesScope = Literal["asset", "room", "building", "site"]
SERIES_SCOPES: Final = ("asset", "room", "building", "site")
MAX_WINDOWS: Final = 20_160
"""Intervals a range may span (two weeks of minutes, 840 days of hours): refused beyond."""
MAX_PAGE_ROWS: Final = 10_000
MAX_SERIES: Final = 10_000
"""Assets one instant may hold for a query: more is refused (filter by room or building)."""
STATS: Final = tuple(f"{q}_{s}" for q in SERIES_METRICS for s in ("mean", "min", "max", "last"))
_TAG_COLUMNS: Final = ("site", "building", "room", "asset")
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "asset": ("asset_id",),
    "room": ("site_id", "building_id", "room_id"),
    "building": ("site_id", "building_id"),
    "site": ("site_id",),
}


@dataclass(frozen=True)
class SeriesRow:
    """One asset's telemetry over one interval starting at `window_start_ms` (`every`):
    per quantity its mean, min, max and last; `on_fraction` the share of readings with the
    lamp on; `readings` their count."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    every: str
    window_start_ms: int
    readings: int
    on_fraction: float
    power_w_mean: float
    power_w_min: float
    power_w_max: float
    power_w_last: float
    voltage_v_mean: float
    voltage_v_min: float
    voltage_v_max: float
    voltage_v_last: float
    current_a_mean: float
    current_a_min: float
    current_a_max: float
    current_a_last: float
    lux_mean: float
    lux_min: float
    lux_max: float
    lux_last: float
    dim_level_mean: float
    dim_level_min: float
    dim_level_max: float
    dim_level_last: float


def tier_of(every: str, fine_ms: int) -> tuple[Tier, int]:
    """(tier, interval ms) of `every`: `fine` (or the fine interval's name) reads the hot
    tier, `1h` the cold one; anything else is a `QueryError`."""
    fine = measure_name(fine_ms).removeprefix("telemetry_")
    if every in ("fine", fine):
        return SERIES_HOT, fine_ms
    if every == "1h":
        return SERIES_COLD, HOUR_MS
    raise QueryError(f"every must be fine ({fine}) or 1h, not {every!r}")


def check_series_request(
    scope: str, ids: dict[str, str | None], every_ms: int, start_ms: int, end_ms: int
) -> None:
    """`QueryError` naming the rule broken, before any statement runs."""
    if scope not in SERIES_SCOPES:
        raise QueryError(f"scope must be one of {', '.join(SERIES_SCOPES)}, not {scope!r}")
    missing = [name for name in _REQUIRED[scope] if not ids.get(name)]
    if missing:
        raise QueryError(f"scope {scope} needs {', '.join(missing)}")
    if not 0 <= start_ms < end_ms:
        raise QueryError("the range is empty: end must be after start")
    if end_ms > MAX_TIME_MS:
        raise QueryError(f"times must be at most {MAX_TIME_MS} (2200-01-01)")
    windows = -(-(end_ms - (start_ms - start_ms % every_ms)) // every_ms)
    if windows > MAX_WINDOWS:
        raise QueryError(
            f"{windows} intervals asked for; the limit is {MAX_WINDOWS} per query "
            "(MAX_WINDOWS): narrow the range or read every=1h"
        )


def series_statement(
    rp: str,
    every_ms: int,
    ids: dict[str, str | None],
    start_ms: int,
    end_ms: int,
    *,
    limit: int,
    offset: int,
) -> str:
    """The InfluxQL statement of one page: raw points of one tier, tags selected as columns."""
    conditions = [f"measure = {quote(measure_name(every_ms))}"]
    for tag, key in (
        ("site", "site_id"),
        ("building", "building_id"),
        ("room", "room_id"),
        ("asset", "asset_id"),
    ):
        value = ids.get(key)
        if value:
            conditions.append(f"{tag} = {quote(value)}")
    conditions += [f"time >= {int(start_ms)}ms", f"time < {int(end_ms)}ms"]
    columns = ", ".join([*(f'"{t}"' for t in _TAG_COLUMNS), "readings", "on_fraction", *STATS])
    return (
        f'SELECT {columns} FROM "{rp}"."series" WHERE {" AND ".join(conditions)} '
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    )


def series_rows(results: list[dict[str, Any]], every: str) -> list[SeriesRow]:
    """Rows of a `series_statement` response (epoch=ms), in the order InfluxDB gave them."""
    rows: list[SeriesRow] = []
    for result in results:
        for series in result.get("series", []):
            columns = series["columns"]
            at = {name: i for i, name in enumerate(columns)}
            for values in series["values"]:
                stats = {name: float(values[at[name]]) for name in STATS}
                rows.append(
                    SeriesRow(
                        site_id=values[at["site"]] or "",
                        building_id=values[at["building"]] or "",
                        room_id=values[at["room"]] or "",
                        asset_id=values[at["asset"]] or "",
                        every=every,
                        window_start_ms=int(values[at["time"]]),
                        readings=int(values[at["readings"]]),
                        on_fraction=float(values[at["on_fraction"]]),
                        **stats,
                    )
                )
    return rows


class SeriesReader:
    """Telemetry series over InfluxQL, one bounded statement per page."""

    def __init__(
        self, client: InfluxHTTP, cursors: Cursors, *, fine_ms: int, rps: dict[Tier, str]
    ) -> None:
        self._client = client
        self._cursors = cursors
        self._fine_ms = fine_ms
        self._rps = rps

    def series(
        self,
        scope: SeriesScope,
        every: str,
        start_ms: int,
        end_ms: int,
        *,
        site_id: str | None = None,
        building_id: str | None = None,
        room_id: str | None = None,
        asset_id: str | None = None,
        limit: int = 1_000,
        cursor: str | None = None,
    ) -> Page[SeriesRow]:
        """The stored rollups of the assets in `scope` (filtered by the ids given; `scope`
        names the ids it needs) in [start_ms, end_ms), ordered by time; at most `limit` rows
        per page (see the module docstring for what one page may read)."""
        if not 1 <= limit <= MAX_PAGE_ROWS:
            raise QueryError(f"limit must be between 1 and {MAX_PAGE_ROWS}, not {limit}")
        tier, every_ms = tier_of(every, self._fine_ms)
        ids = {
            "site_id": site_id or None,
            "building_id": building_id or None,
            "room_id": room_id or None,
            "asset_id": asset_id or None,
        }
        check_series_request(scope, ids, every_ms, start_ms, end_ms)
        query = query_id("series", scope, str(every_ms), start_ms, end_ms, *ids.values())
        t, offset = start_ms, 0
        if cursor:
            decoded = self._cursors.decode(query, cursor)
            at, skip = decoded.get("t"), decoded.get("o")
            if not (
                type(at) is int
                and type(skip) is int
                and start_ms <= at < end_ms
                and 0 <= skip <= MAX_SERIES
            ):
                raise QueryError("the cursor is not one this API returned for this query")
            t, offset = at, skip
        statement = series_statement(
            self._rps[tier], every_ms, ids, t, end_ms, limit=limit, offset=offset
        )
        rows = series_rows(self._client.query(statement), interval_label(every_ms))
        if len(rows) < limit:
            return Page(rows, None)
        last = rows[-1].window_start_ms
        at_last = sum(1 for r in rows if r.window_start_ms == last)
        next_offset = at_last + (offset if last == t else 0)
        if next_offset > MAX_SERIES:
            raise QueryError(
                f"more than {MAX_SERIES} assets at one instant (MAX_SERIES): filter by room "
                "or building"
            )
        return Page(rows, self._cursors.encode(query, {"t": last, "o": next_offset}))


def interval_label(every_ms: int) -> str:
    return measure_name(every_ms).removeprefix("telemetry_")
