"""Reads of the command model (DynamoDB), by the access patterns the table was designed for
(`domain.views`): asset state (GetItem), open faults of a building and open spikes of a site
(Query on the sparse index `gsi1`), spikes of a site since a time (Query, sk >= the time), and
building and site
summaries built from the registry items (pk `REGISTRY`) plus counting queries. Strongly
consistent where the table allows it (not on the index).

Every list is paged and every page's work is bounded: at most `MAX_PAGE` rows per Query page;
summaries page over the registry's sorted ids, `MAX_SUMMARY_PAGE` buildings or sites per page,
each count a `Select=COUNT` query of at most `COUNT_PAGES` DynamoDB pages. The registry is read
at most once per `registry_max_age_s` (a request never scans it again while it is fresh).
Cursors are signed (`Cursors`) and bound to their query: a cursor of another query or one a
client made up is a `QueryError`, never a DynamoDB call with a key we did not produce."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from core.clock import DAY_MS
from core.errors import LuxflowError
from core.retry import describe_error
from domain.registry import Registry
from lighting.read.cursors import Cursors, query_id
from lighting.read.rows import (
    AssetStateRow,
    BuildingSummary,
    FaultRow,
    Page,
    QueryError,
    SiteSummary,
    SpikeRow,
)
from sinks.attrvalues import from_item

MAX_PAGE: Final = 1_000
"""Most rows of one page of open faults or spikes (DynamoDB's `Limit`)."""
MAX_SUMMARY_PAGE: Final = 100
"""Most buildings (or sites) of one page of `/buildings` (or `/fleet`)."""
FLEET_PAGE_BUILDINGS: Final = 200
"""A page of sites stops before its buildings exceed this (a single site is always whole)."""
COUNT_PAGES: Final = 10
"""A count (open faults, spikes) reads at most this many DynamoDB pages (1 MB each): a larger
count is reported as what those pages held."""
REGISTRY_MAX_AGE_S: Final = 30.0


class ReadError(LuxflowError):
    """The command model could not be read (table missing, throttled, unreachable)."""


def _page_size(limit: int, most: int = MAX_PAGE) -> int:
    if not 1 <= limit <= most:
        raise QueryError(f"limit must be between 1 and {most}, not {limit}")
    return limit


def fault_row(item: dict[str, Any]) -> FaultRow:
    cleared = item.get("cleared_at_ms")
    return FaultRow(
        site_id=str(item["site_id"]),
        building_id=str(item["building_id"]),
        room_id=str(item["room_id"]),
        asset_id=str(item["asset_id"]),
        code=str(item["code"]),
        opened_at_ms=int(item["opened_at_ms"]),
        status=str(item["status"]),
        cleared_at_ms=int(cleared) if cleared is not None else None,
        event_id=str(item["event_id"]),
    )


def spike_row(item: dict[str, Any]) -> SpikeRow:
    ended = item.get("ended_at_ms")
    return SpikeRow(
        site_id=str(item["site_id"]),
        building_id=str(item["building_id"]),
        room_id=str(item["room_id"]),
        asset_id=str(item["asset_id"]),
        level=str(item.get("level", "asset")),
        rule=str(item["rule"]),
        started_at_ms=int(item["started_at_ms"]),
        ended_at_ms=int(ended) if ended is not None else None,
        peak_w=float(item["peak_w"]),
        threshold_w=float(item["threshold_w"]),
        excess_wh=float(item["excess_wh"]),
        event_id=str(item["event_id"]),
        # Items stored before spikes were raised at onset are closed ones.
        status=str(item.get("status", "closed")),
    )


class CommandReader:
    """The command-model queries over one DynamoDB table (low-level client)."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        load_registry: Callable[[], Registry],
        cursors: Cursors,
        *,
        registry_max_age_s: float = REGISTRY_MAX_AGE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._load_registry = load_registry
        self._cursors = cursors
        self._registry_max_age_s = registry_max_age_s
        self._monotonic = monotonic
        self._registry_lock = threading.Lock()
        self._registry_cache: tuple[float, Registry] | None = None

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(TableName=self._table, **kwargs)
        except ClientError as exc:
            raise ReadError(f"{what} on {self._table} failed: {describe_error(exc)}") from exc
        except BotoCoreError as exc:
            raise ReadError(f"{what} on {self._table} failed: {exc}") from exc

    def asset_state(self, asset_id: str) -> AssetStateRow | None:
        """The current state of an asset, or None if it never reported."""
        response = self._call(
            "GetItem",
            self._dynamodb.get_item,
            Key={"pk": {"S": f"ASSET#{asset_id}"}, "sk": {"S": "STATE"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        fault_code = item.get("fault_code")
        return AssetStateRow(
            asset_id=str(item["asset_id"]),
            site_id=str(item["site_id"]),
            building_id=str(item["building_id"]),
            room_id=str(item["room_id"]),
            ts_ms=int(item["ts_ms"]),  # type: ignore[call-overload]
            power_w=float(item["power_w"]),  # type: ignore[arg-type]
            on=bool(item["on"]),
            dim_level=int(item["dim_level"]),  # type: ignore[call-overload]
            fault_code=str(fault_code) if fault_code is not None else None,
        )

    def _query(
        self,
        what: str,
        limit: int,
        cursor: str | None,
        *,
        query: str | None = None,
        carry: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[list[dict[str, Any]], str | None]:
        # The cursor is bound to everything that selects the rows (or to `query`, which a
        # caller derives from what selects them), so the key it carries can only continue
        # the query it came from. `carry` goes into the next cursor beside the key.
        if query is None:
            query = query_id(what, kwargs.get("IndexName"), kwargs["ExpressionAttributeValues"])
        if cursor:
            state = self._cursors.decode(query, cursor)
            if not isinstance(state.get("k"), dict):
                raise QueryError("the cursor is not one this API returned for this query")
            kwargs["ExclusiveStartKey"] = state["k"]
        response = self._call(what, self._dynamodb.query, Limit=_page_size(limit), **kwargs)
        items = [from_item(raw) for raw in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return items, self._cursors.encode(query, {"k": last, **(carry or {})}) if last else None

    def _count(self, what: str, **kwargs: Any) -> int:
        """Items a Query selects, over at most `COUNT_PAGES` pages."""
        count = 0
        for _ in range(COUNT_PAGES):
            response = self._call(what, self._dynamodb.query, Select="COUNT", **kwargs)
            count += int(response.get("Count", 0))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
        return count

    def open_faults(
        self, site_id: str, building_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[FaultRow]:
        """Open faults of a building, oldest first (sparse index: cleared ones are not in it)."""
        items, next_cursor = self._query(
            "Query open faults",
            limit,
            cursor,
            **self._open_faults_key(site_id, building_id),
        )
        return Page([fault_row(item) for item in items], next_cursor)

    @staticmethod
    def _open_faults_key(site_id: str, building_id: str) -> dict[str, Any]:
        return {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"OPENFAULT#{site_id}#{building_id}"}},
        }

    @staticmethod
    def _spikes_key(site_id: str, since_ms: int) -> dict[str, Any]:
        return {
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"SPIKE#{site_id}"},
                ":since": {"S": f"{max(0, since_ms):013d}"},
            },
        }

    def spikes(
        self,
        site_id: str,
        since_ms: int | None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = True,
        now_ms: int = 0,
    ) -> Page[SpikeRow]:
        """Energy spikes of a site that started at or after `since_ms` (asset and site level).
        `since_ms` None: the last day, a day before `now_ms` of the first page; its cursors
        carry that time, so the following pages continue the same query whenever they come
        (a later page judging "a day ago" again would be another query)."""
        query = carry = None
        if since_ms is None:
            query = query_id("Query spikes of the last day", site_id, newest_first)
            since_ms = now_ms - DAY_MS
            if cursor:
                held = self._cursors.decode(query, cursor).get("since")
                if type(held) is not int:
                    raise QueryError("the cursor is not one this API returned for this query")
                since_ms = held
            carry = {"since": since_ms}
        items, next_cursor = self._query(
            "Query spikes",
            limit,
            cursor,
            query=query,
            carry=carry,
            ScanIndexForward=not newest_first,
            ConsistentRead=True,
            **self._spikes_key(site_id, since_ms),
        )
        return Page([spike_row(item) for item in items], next_cursor)

    def open_spikes(
        self, site_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[SpikeRow]:
        """Energy spikes of a site still in progress, whatever their start, oldest first (the
        sparse index holds a spike while it is open: a closed one is not in it). The index is
        eventually consistent: a spike closed a moment ago may still be listed open."""
        items, next_cursor = self._query(
            "Query open spikes",
            limit,
            cursor,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"OPENSPIKE#{site_id}"}},
        )
        return Page([spike_row(item) for item in items], next_cursor)

    def registry(self) -> Registry:
        """The registry, read again once it is older than `registry_max_age_s`."""
        with self._registry_lock:
            now = self._monotonic()
            cached = self._registry_cache
            if cached is None or now - cached[0] >= self._registry_max_age_s:
                try:
                    cached = (now, self._load_registry())
                except (ClientError, BotoCoreError) as exc:
                    raise ReadError(f"reading the registry failed: {describe_error(exc)}") from exc
                self._registry_cache = cached
            return cached[1]

    def _building_shapes(self) -> list[tuple[str, str, int, int]]:
        """(site, building, rooms, assets) of every building, sorted by ids."""
        rooms: dict[tuple[str, str], set[str]] = {}
        assets: dict[tuple[str, str], int] = {}
        for asset in self.registry().assets.values():
            key = (asset.site_id, asset.building_id)
            rooms.setdefault(key, set()).add(asset.room_id)
            assets[key] = assets.get(key, 0) + 1
        return [(s, b, len(rooms[(s, b)]), assets[(s, b)]) for s, b in sorted(assets)]

    def _summary(self, site_id: str, building_id: str, rooms: int, assets: int) -> BuildingSummary:
        return BuildingSummary(
            site_id=site_id,
            building_id=building_id,
            rooms=rooms,
            assets=assets,
            open_faults=self._count(
                "Count open faults", **self._open_faults_key(site_id, building_id)
            ),
        )

    def buildings_page(
        self, *, limit: int = MAX_SUMMARY_PAGE, cursor: str | None = None
    ) -> Page[BuildingSummary]:
        """Buildings of the registry, by ids, with their rooms, assets and open faults."""
        limit = _page_size(limit, MAX_SUMMARY_PAGE)
        shapes = self._building_shapes()
        start = 0
        query = query_id("buildings")
        if cursor:
            after = self._cursors.decode(query, cursor).get("after")
            if not (isinstance(after, list) and all(isinstance(x, str) for x in after)):
                raise QueryError("the cursor is not one this API returned for this query")
            start = bisect.bisect_right([(s, b) for s, b, _, _ in shapes], tuple(after))
        chosen = shapes[start : start + limit]
        rows = [self._summary(*shape) for shape in chosen]
        more = start + limit < len(shapes)
        next_cursor = (
            self._cursors.encode(query, {"after": [rows[-1].site_id, rows[-1].building_id]})
            if more and rows
            else None
        )
        return Page(rows, next_cursor)

    def fleet_page(
        self, now_ms: int, *, limit: int = MAX_SUMMARY_PAGE, cursor: str | None = None
    ) -> Page[SiteSummary]:
        """Per site, by id: buildings, assets, open faults, and spikes that started in the
        last day. A page ends after `limit` sites or before its buildings would exceed
        `FLEET_PAGE_BUILDINGS` (each building costs a count)."""
        limit = _page_size(limit, MAX_SUMMARY_PAGE)
        per_site: dict[str, list[tuple[str, str, int, int]]] = {}
        for shape in self._building_shapes():
            per_site.setdefault(shape[0], []).append(shape)
        sites = sorted(per_site)
        start = 0
        query = query_id("fleet")
        if cursor:
            after = self._cursors.decode(query, cursor).get("after")
            if not isinstance(after, str):
                raise QueryError("the cursor is not one this API returned for this query")
            start = bisect.bisect_right(sites, after)
        rows: list[SiteSummary] = []
        budget = FLEET_PAGE_BUILDINGS
        for site_id in sites[start:]:
            shapes = per_site[site_id]
            if len(rows) == limit or (rows and len(shapes) > budget):
                break
            budget -= len(shapes)
            buildings = [self._summary(*shape) for shape in shapes]
            rows.append(
                SiteSummary(
                    site_id=site_id,
                    buildings=len(buildings),
                    assets=sum(b.assets for b in buildings),
                    open_faults=sum(b.open_faults for b in buildings),
                    spikes_last_day=self._count(
                        "Count spikes",
                        ConsistentRead=True,
                        **self._spikes_key(site_id, now_ms - DAY_MS),
                    ),
                )
            )
        more = start + len(rows) < len(sites)
        next_cursor = self._cursors.encode(query, {"after": rows[-1].site_id}) if more else None
        return Page(rows, next_cursor)

    def buildings(self) -> list[BuildingSummary]:
        """Every building (every page of `buildings_page`)."""
        return _every_page(lambda cursor: self.buildings_page(cursor=cursor))

    def fleet_summary(self, now_ms: int) -> list[SiteSummary]:
        """Every site (every page of `fleet_page`)."""
        return _every_page(lambda cursor: self.fleet_page(now_ms, cursor=cursor))


T = TypeVar("T")


def _every_page(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    rows: list[T] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        rows.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return rows
