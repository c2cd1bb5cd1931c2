"""Reads of the query model with InfluxQL: energy per site, building or room per hour or day.

The sink writes each scope's hourly usage report as a point of measurement `usage` with tags
`measure=usage`, `level=<scope>` and the scope's ids (`sinks.influxdb`). Energy per hour is
those points; energy per day is their sum over UTC days (`GROUP BY time(1d)`), so a day that is
still running counts its closed hours only. InfluxQL over `/query` is the one query language
InfluxDB 1.8, v2 and v3 (Timestream for InfluxDB) all accept.

The work of one page is bounded, whatever the range asked for. Before any statement runs, the
range may hold at most `MAX_WINDOWS` windows. A page then reads the range slice by slice, in
time order: it counts the stored points of one window first when it does not yet know how
many series the range holds (one number comes back, not rows), skips an empty stretch with
one `first()` query, and sizes each slice it fetches from the series seen so far, so that it
reads at most `PAGE_POINTS` stored points and runs at most `PAGE_QUERIES` statements. A window
holding more than `MAX_SERIES` series is refused (filter by site). The cursor carries where
the page stopped (the next window, the rows of it already returned, the series seen): the next
page reads on from there and never re-runs the range before it. Rows come ordered by window
start, then ids; a page may hold fewer rows than `limit` (even none) while `next_cursor` is
set: follow it until it is null.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final, Literal

from core.clock import DAY_MS, HOUR_MS
from lighting.read.cursors import Cursors, query_id
from lighting.read.rows import EnergyRow, Page, QueryError
from sinks.influxhttp import InfluxHTTP

Scope = Literal["site", "building", "room"]
Every = Literal["1h", "1d"]
SCOPES: Final = ("site", "building", "room")
EVERY_MS: Final = {"1h": HOUR_MS, "1d": DAY_MS}
POINTS_PER_WINDOW: Final = {"1h": 1, "1d": 24}
"""Stored (hourly) points per series in one output window."""
MAX_WINDOWS: Final = 10_000
"""Windows a range may span (1h: about 416 days; 1d: about 27 years): refused before any query."""
MAX_PAGE_ROWS: Final = 10_000
"""Most rows of one page (`limit`)."""
MAX_SERIES: Final = 10_000
"""Series (sites, buildings or rooms) one window may hold: more is refused, filter by site."""
PAGE_POINTS: Final = 200_000
"""Stored points one page may read, over all its statements (one window may exceed it alone)."""
PAGE_QUERIES: Final = 6
"""InfluxQL statements one page may run."""
MAX_TIME_MS: Final = 7_258_118_400_000
"""2200-01-01T00:00:00Z: later times are refused (InfluxDB's clock ends in 2262)."""
_TAGS: Final = {
    "site": ("site",),
    "building": ("site", "building"),
    "room": ("site", "building", "room"),
}


def quote(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _conditions(
    scope: Scope, site_id: str | None, building_id: str | None, room_id: str | None
) -> list[str]:
    conditions = ["measure = 'usage'", f"level = {quote(scope)}"]
    for tag, value in (("site", site_id), ("building", building_id), ("room", room_id)):
        if value:
            conditions.append(f"{tag} = {quote(value)}")
    return conditions


def _where(conditions: list[str], start_ms: int, end_ms: int) -> str:
    return " AND ".join([*conditions, f"time >= {int(start_ms)}ms", f"time < {int(end_ms)}ms"])


def check_request(scope: str, every: str, start_ms: int, end_ms: int) -> int:
    """The number of windows [start_ms, end_ms) spans, or `QueryError` naming the limit broken."""
    if scope not in SCOPES:
        raise QueryError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if every not in EVERY_MS:
        raise QueryError(f"every must be 1h or 1d, not {every!r}")
    if not 0 <= start_ms < end_ms:
        raise QueryError("the range is empty: end must be after start")
    if end_ms > MAX_TIME_MS:
        raise QueryError(f"times must be at most {MAX_TIME_MS} (2200-01-01)")
    every_ms = EVERY_MS[every]
    windows = -(-(end_ms - (start_ms - start_ms % every_ms)) // every_ms)
    if windows > MAX_WINDOWS:
        raise QueryError(
            f"{windows} windows of {every} asked for; the limit is {MAX_WINDOWS} windows per "
            "query (MAX_WINDOWS): narrow the range or use every=1d"
        )
    return windows


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
    """The InfluxQL statement of the rows of [start_ms, end_ms)."""
    check_request(scope, every, start_ms, end_ms)
    where = _where(_conditions(scope, site_id, building_id, room_id), start_ms, end_ms)
    group = ", ".join(_TAGS[scope])
    return (
        f"SELECT sum(kwh) AS kwh FROM usage WHERE {where} "
        f"GROUP BY time({every}), {group} fill(none)"
    )


def energy_rows(results: list[dict[str, Any]], scope: Scope, every: Every) -> list[EnergyRow]:
    """Rows of an `energy_query` response (epoch=ms), ordered by time then ids."""
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
    rows.sort(key=lambda r: (r.window_start_ms, r.site_id, r.building_id, r.room_id))
    return rows


def _single_value(results: list[dict[str, Any]], column: int) -> Any:
    for result in results:
        for series in result.get("series", []):
            for values in series.get("values", []):
                return values[column]
    return None


class _PageState:
    """Where a page of energy rows stands: the next window start `t`, the rows of the slice
    starting at `t` already returned `offset`, the series per window seen so far `series`
    (0: not known), and the statements run and points read by this page."""

    def __init__(self, t: int, offset: int, series: int) -> None:
        self.t, self.offset, self.series = t, offset, series
        self.queries = 0
        self.points = 0


class EnergyReader:
    """Energy queries over InfluxQL, a bounded slice of the range per page."""

    def __init__(self, client: InfluxHTTP, cursors: Cursors) -> None:
        self._client = client
        self._cursors = cursors

    def _query(self, state: _PageState, statement: str) -> list[dict[str, Any]]:
        state.queries += 1
        return self._client.query(statement)

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
        [start_ms, end_ms), ordered by window start then ids; at most `limit` rows per page
        (see the module docstring for what one page may read)."""
        if not 1 <= limit <= MAX_PAGE_ROWS:
            raise QueryError(f"limit must be between 1 and {MAX_PAGE_ROWS}, not {limit}")
        check_request(scope, every, start_ms, end_ms)
        ids = (site_id or None, building_id or None, room_id or None)
        query = query_id("energy", scope, every, start_ms, end_ms, *ids)
        state = self._start(query, cursor, start_ms, end_ms)
        conditions = _conditions(scope, *ids)
        every_ms, per_window = EVERY_MS[every], POINTS_PER_WINDOW[every]
        rows: list[EnergyRow] = []
        while len(rows) < limit and state.t < end_ms and state.queries < PAGE_QUERIES:
            if rows and state.points >= PAGE_POINTS:
                break
            if state.series == 0:
                if not self._measure(state, conditions, every_ms, per_window, end_ms):
                    continue
                if state.queries >= PAGE_QUERIES:
                    break
            want = limit - len(rows)
            windows = max(
                1,
                min(
                    -(-(state.offset + want) // state.series),
                    (PAGE_POINTS - state.points) // (state.series * per_window),
                ),
            )
            slice_end = min(end_ms, state.t - state.t % every_ms + windows * every_ms)
            statement = (
                f"SELECT sum(kwh) AS kwh FROM usage WHERE "
                f"{_where(conditions, state.t, slice_end)} "
                f"GROUP BY time({every}), {', '.join(_TAGS[scope])} fill(none)"
            )
            fetched = energy_rows(self._query(state, statement), scope, every)
            state.points += len(fetched) * per_window
            widest = max(Counter(r.window_start_ms for r in fetched).values(), default=0)
            if widest > MAX_SERIES:
                raise _too_many_series()
            # The next slice is sized by the series this one held, not the first estimate.
            state.series = widest
            rest = fetched[state.offset :]
            taken = rest[:want]
            rows.extend(taken)
            if len(taken) < len(rest):
                state.offset += len(taken)
                break
            state.t, state.offset = slice_end, 0
        next_cursor = (
            self._cursors.encode(query, {"t": state.t, "o": state.offset, "n": state.series})
            if state.t < end_ms
            else None
        )
        return Page(rows, next_cursor)

    def _start(self, query: str, cursor: str | None, start_ms: int, end_ms: int) -> _PageState:
        if not cursor:
            return _PageState(start_ms, 0, 0)
        decoded = self._cursors.decode(query, cursor)
        t, offset, series = decoded.get("t"), decoded.get("o"), decoded.get("n")
        if not (
            all(type(v) is int for v in (t, offset, series))
            and start_ms <= t < end_ms  # type: ignore[operator]
            and 0 <= offset <= MAX_PAGE_ROWS * MAX_SERIES  # type: ignore[operator]
            and 0 <= series <= MAX_SERIES  # type: ignore[operator]
        ):
            raise QueryError("the cursor is not one this API returned for this query")
        return _PageState(t, offset, series)  # type: ignore[arg-type]

    def _measure(
        self,
        state: _PageState,
        conditions: list[str],
        every_ms: int,
        per_window: int,
        end_ms: int,
    ) -> bool:
        """Count the stored points of the window at `state.t` (one number, not rows) to learn
        how many series a slice will hold. An empty window moves `state.t` to the window of
        the next stored point (or the end) and returns False."""
        window_end = min(end_ms, state.t - state.t % every_ms + every_ms)
        counted = _single_value(
            self._query(
                state,
                f"SELECT count(kwh) FROM usage WHERE {_where(conditions, state.t, window_end)}",
            ),
            1,
        )
        points = int(counted or 0)
        state.points += points
        if points > MAX_SERIES * per_window:
            raise _too_many_series()
        if points:
            # Hourly: one point per series. Daily: a series holds 1 to 24 points in a day, so
            # the count is only an upper bound of the rows (sized small; the fetch corrects it).
            state.series = min(points, MAX_SERIES)
            return True
        first = _single_value(
            self._query(
                state,
                f"SELECT first(kwh) FROM usage WHERE {_where(conditions, window_end, end_ms)}",
            ),
            0,
        )
        state.offset = 0
        state.t = end_ms if first is None else max(window_end, int(first) - int(first) % every_ms)
        return False


def _too_many_series() -> QueryError:
    return QueryError(
        f"more than {MAX_SERIES} series in one window (MAX_SERIES): filter by site or building"
    )
