"""`luxflow query`: the read side from the command line.

    luxflow query asset ASSET_ID
    luxflow query faults --site S --building B
    luxflow query spikes --site S [--since TIME]
    luxflow query energy --scope site|building|room [--site S ...] --every 1h|1d --start T --end T
    luxflow query series --scope asset|room|building|site [--asset A | --site S ...]
                         --every fine|1h --start T --end T
    luxflow query fleet

`--format table` (default: times as ISO-8601 UTC, headers without `_ms`; an empty result
says what was searched and which ids exist nearby), `json` (one array, times in ms) or `csv`
(a text cell that a spreadsheet would run as a formula is prefixed with an apostrophe).
Every page is fetched; `--limit N` stops after N rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from cli.base import SubParsers, info, time_column
from cli.explain_empty import explain_empty
from core.clock import DAY_MS, wall_clock_ms
from domain.timestamps import format_ts
from lighting.clients import Clients
from lighting.read.model import ReadModel, read_model
from lighting.read.rows import Page, row_dict
from lighting.settings import Settings, parse_time_ms

FORMATS = ("table", "json", "csv")
_TIME_FIELDS = frozenset(
    {"ts_ms", "opened_at_ms", "cleared_at_ms", "started_at_ms", "ended_at_ms", "window_start_ms"}
)


def register(sub: SubParsers) -> None:
    query = sub.add_parser("query", help="read the command model (DynamoDB) and query model")
    kinds = query.add_subparsers(dest="kind", required=True, metavar="KIND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = kinds.add_parser(name, help=help_text)
        parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
        parser.add_argument("--limit", type=int, default=0, help="at most this many rows")
        parser.set_defaults(run=cmd_query)
        return parser

    asset = add("asset", "current state of an asset")
    asset.add_argument("asset_id", help="the asset id, as in the registry")
    faults = add("faults", "open faults of a building")
    faults.add_argument("--site", required=True, help="site id")
    faults.add_argument("--building", required=True, help="building id within the site")
    spikes = add(
        "spikes",
        "energy spikes of a site since a time (newest first), then those still in progress "
        "that started before it",
    )
    spikes.add_argument("--site", required=True, help="site id")
    spikes.add_argument("--since", default="", help="ISO-8601 UTC time (default: a day ago)")
    energy = add("energy", "energy per site, building or room per hour or day (query model)")
    energy.add_argument(
        "--scope",
        choices=["site", "building", "room"],
        default="site",
        help="the level to sum energy at (default site)",
    )
    energy.add_argument("--site", default="", help="site id (every scope needs it)")
    energy.add_argument("--building", default="", help="building id (scope building or room)")
    energy.add_argument("--room", default="", help="room id (scope room)")
    energy.add_argument(
        "--every", choices=["1h", "1d"], default="1h", help="hourly or daily sums (default 1h)"
    )
    energy.add_argument("--start", required=True, help="ISO-8601 UTC time (inclusive)")
    energy.add_argument("--end", required=True, help="ISO-8601 UTC time (exclusive)")
    add("fleet", "per site: buildings, assets, open faults, spikes in the last day")
    series = add("series", "per-asset telemetry per interval or hour (query model)")
    series.add_argument(
        "--scope",
        choices=["asset", "room", "building", "site"],
        default="asset",
        help="the assets to read: one (--asset), or a room's, building's or site's",
    )
    series.add_argument("--asset", default="", help="asset id (scope asset)")
    series.add_argument("--site", default="", help="site id (scopes site, building, room)")
    series.add_argument("--building", default="", help="building id (scopes building, room)")
    series.add_argument("--room", default="", help="room id (scope room)")
    series.add_argument(
        "--every",
        default="fine",
        help="fine (the series interval, kept for days) or 1h (kept for a year); default fine",
    )
    series.add_argument("--start", required=True, help="ISO-8601 UTC time (inclusive)")
    series.add_argument("--end", required=True, help="ISO-8601 UTC time (exclusive)")


def _pages(fetch: Callable[[str | None], Page[Any]]) -> Iterator[Any]:
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def query_rows(args: argparse.Namespace, model: ReadModel, now_ms: int) -> Iterator[Any]:
    """The rows `args` asks for, page after page."""
    command = model.command
    if args.kind == "asset":
        state = command.asset_state(args.asset_id)
        return iter([state] if state is not None else [])
    if args.kind == "faults":
        return _pages(lambda c: command.open_faults(args.site, args.building, limit=500, cursor=c))
    if args.kind == "spikes":
        since_ms = parse_time_ms(args.since) if args.since else now_ms - DAY_MS
        # Those that started since, newest first, then those in progress that started before:
        # an episode still open is listed whatever its start.
        older_open = (
            spike
            for spike in _pages(lambda c: command.open_spikes(args.site, limit=500, cursor=c))
            if spike.started_at_ms < since_ms
        )
        return itertools.chain(
            _pages(lambda c: command.spikes(args.site, since_ms, limit=500, cursor=c)),
            older_open,
        )
    if args.kind in ("energy", "series"):
        start_ms, end_ms = parse_time_ms(args.start), parse_time_ms(args.end)
        ids: dict[str, Any] = {
            "site_id": args.site or None,
            "building_id": args.building or None,
            "room_id": args.room or None,
        }
        if args.kind == "series":
            read: Callable[..., Any] = model.series.series
            ids["asset_id"] = args.asset or None
        else:
            read = model.energy.energy
        return _pages(
            lambda c: read(args.scope, args.every, start_ms, end_ms, **ids, limit=5_000, cursor=c)
        )
    return iter(command.fleet_summary(now_ms))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet treats a cell starting with one of these as a formula (or strips it)."""


def csv_cell(value: Any) -> Any:
    """`value` safe to open in a spreadsheet: a text starting like a formula gets a leading
    apostrophe, so that an id a device chose (`=HYPERLINK(...)`) stays text. Numbers are
    left alone: a negative number is data, not a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as a JSON array, CSV with a header, or an aligned table (times in ISO-8601)."""
    if fmt == "json":
        return msgspec.json.encode(rows).decode()
    if not rows:
        return "" if fmt == "csv" else "(no rows)"
    columns = list(rows[0])
    if fmt == "csv":
        out = io.StringIO()
        # RFC 4180's CRLF: with it the writer also quotes a cell holding a bare CR, which a
        # "\n" line end would leave unquoted (a reader would split the row there).
        writer = csv.DictWriter(out, columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        return out.getvalue().removesuffix("\r\n")

    def cell(name: str, value: Any) -> str:
        if value is None:
            return "-"
        if name in _TIME_FIELDS and isinstance(value, int):
            return format_ts(value)
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    cells = [[cell(c, row[c]) for c in columns] for row in rows]
    # A time column holds ISO times here, so its header drops the `_ms` of the raw field.
    header = [time_column(c) if c in _TIME_FIELDS else c for c in columns]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    model = read_model(settings, Clients(settings))
    rows: list[dict[str, Any]] = []
    for row in query_rows(args, model, wall_clock_ms()):
        rows.append(row_dict(row))
        if args.limit and len(rows) >= args.limit:
            break
    if not rows and args.format == "table":
        info(explain_empty(args, model.command.registry()))
        return 0
    text = render(rows, args.format)
    if text:
        sys.stdout.write(text + ("\r\n" if args.format == "csv" else "\n"))
    return 0
