"""Reads of the query model with InfluxQL: energy per site, building or room per hour or day.

The sink writes each scope's hourly usage report as a point of measurement `usage` with tags
`measure=usage`, `level=<scope>` and the scope's ids (`sinks.influxdb`). Energy per hour is
those points; energy per day is their sum over UTC days (`GROUP BY time(1d)`), so a day that is
still running counts its closed hours only. InfluxQL over `/query` is the one query language
InfluxDB 1.8, v2 and v3 (Timestream for InfluxDB) all accept.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, Literal

from core.clock import DAY_MS, HOUR_MS
from lighting.read.rows import EnergyRow, Page, QueryError, decode_cursor, encode_cursor
from sinks.influxhttp import InfluxHTTP

Scope = Literal["site", "building", "room"]
Every = Literal["1h", "1d"]
SCOPES: Final = ("site", "building", "room")
EVERY_MS: Final = {"1h": HOUR_MS, "1d": DAY_MS}
MAX_ROWS: Final = 50_000
"""A range x scope asking for more rows than this is refused: narrow it."""
_TAGS: Final = {
    "site": ("site",),
    "building": ("site", "building"),
    "room": ("site", "building", "room"),
}


def quote(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def energy_query(
    scope: Scope,
    every: Every,
    start_ms: int,
    end_ms: int,
    *,
    site_id: str | None = None,
    building_id: str | None = None,
    room_id: str | None = None,
) -> str:
    """The InfluxQL statement of `EnergyReader.energy`."""
    if scope not in SCOPES:
        raise QueryError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if every not in EVERY_MS:
        raise QueryError(f"every must be 1h or 1d, not {every!r}")
    if end_ms <= start_ms:
        raise QueryError("the range is empty: end must be after start")
    conditions = ["measure = 'usage'", f"level = {quote(scope)}"]
    for tag, value in (("site", site_id), ("building", building_id), ("room", room_id)):
        if value:
            conditions.append(f"{tag} = {quote(value)}")
    conditions += [f"time >= {int(start_ms)}ms", f"time < {int(end_ms)}ms"]
    group = ", ".join(_TAGS[scope])
    return (
        f"SELECT sum(kwh) AS kwh FROM usage WHERE {' AND '.join(conditions)} "
        f"GROUP BY time({every}), {group} fill(none)"
    )


def energy_rows(results: list[dict[str, Any]], scope: Scope, every: Every) -> list[EnergyRow]:
    """Rows of an `energy_query` response (epoch=ms), ordered by ids then time."""
    rows: list[EnergyRow] = []
    for result in results:
        for series in result.get("series", []):
            tags = series.get("tags", {})
            columns = series["columns"]
            t, k = columns.index("time"), columns.index("kwh")
            for values in series["values"]:
                if values[k] is None:
                    continue
                rows.append(
                    EnergyRow(
                        scope=scope,
                        site_id=tags.get("site", ""),
                        building_id=tags.get("building", ""),
                        room_id=tags.get("room", ""),
                        every=every,
                        window_start_ms=int(values[t]),
                        kwh=float(values[k]),
                    )
                )
    rows.sort(key=lambda r: (r.site_id, r.building_id, r.room_id, r.window_start_ms))
    return rows


class EnergyReader:
    """Energy queries over InfluxQL."""

    def __init__(self, client: InfluxHTTP) -> None:
        self._client = client

    def energy(
        self,
        scope: Scope,
        every: Every,
        start_ms: int,
        end_ms: int,
        *,
        site_id: str | None = None,
        building_id: str | None = None,
        room_id: str | None = None,
        limit: int = 1_000,
        cursor: str | None = None,
    ) -> Page[EnergyRow]:
        """kWh of each scope (filtered by the ids given) per hour or UTC day in
        [start_ms, end_ms), ordered by ids then time; `limit` rows per page."""
        if not 1 <= limit <= MAX_ROWS:
            raise QueryError(f"limit must be between 1 and {MAX_ROWS}, not {limit}")
        windows = -(-(end_ms - start_ms) // EVERY_MS.get(every, HOUR_MS))
        if windows > MAX_ROWS:
            raise QueryError(f"{windows} windows of {every} asked for: narrow the range")
        statement = energy_query(
            scope,
            every,
            start_ms,
            end_ms,
            site_id=site_id,
            building_id=building_id,
            room_id=room_id,
        )
        rows = energy_rows(self._client.query(statement), scope, every)
        if len(rows) > MAX_ROWS:
            raise QueryError(f"{len(rows)} rows: narrow the range or filter by site")
        query_id = hashlib.blake2b(statement.encode(), digest_size=8).hexdigest()
        offset = 0
        if cursor:
            state = decode_cursor(cursor)
            offset = int(state.get("offset", 0))
            if state.get("q") != query_id or offset < 0:
                raise QueryError("the cursor belongs to another query")
        page = rows[offset : offset + limit]
        next_offset = offset + len(page)
        next_cursor = (
            encode_cursor({"q": query_id, "offset": next_offset})
            if next_offset < len(rows)
            else None
        )
        return Page(page, next_cursor)
