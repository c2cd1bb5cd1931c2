"""The JSON read API, version 1. Every route is GET (read-only) and needs the bearer token.
Every list is paginated: `limit` rows per page and `next_cursor` to pass as `cursor` for the
next page (null on the last one); a cursor this API did not sign for the same query is 400.
Times are integer milliseconds since the epoch (UTC). Ids are 1 to `MAX_ID_CHARS` characters.
What one page may cost is bounded in `lighting.read` (docs/security.md lists the limits)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from lighting.read.command import MAX_PAGE, MAX_SUMMARY_PAGE
from lighting.read.energy import MAX_PAGE_ROWS, MAX_TIME_MS
from lighting.read.model import ReadModel
from lighting.read.rows import (
    AssetStateRow,
    BuildingSummary,
    EnergyRow,
    FaultRow,
    Page,
    SiteSummary,
    SpikeRow,
)
from lighting.read.series import MAX_PAGE_ROWS as MAX_SERIES_ROWS
from lighting.read.series import SeriesRow

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of results."""

    items: list[T]
    next_cursor: str | None = None


def page_out(page: Page[T]) -> PageOut[T]:
    return PageOut[T](items=page.items, next_cursor=page.next_cursor)


MAX_ID_CHARS = 200
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")]
SummaryLimit = Annotated[
    int, Query(ge=1, le=MAX_SUMMARY_PAGE, description="buildings or sites per page")
]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
Id = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
IdFilter = Annotated[str | None, Query(max_length=MAX_ID_CHARS)]


def router(
    model: ReadModel, now_ms: Callable[[], int], auth: Callable[..., Awaitable[None]]
) -> APIRouter:
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(auth)])

    @api.get("/assets/{asset_id}", response_model=AssetStateRow, tags=["command model"])
    def asset_state(asset_id: Id) -> AssetStateRow:
        """Current state of an asset (404 if it never reported)."""
        state = model.command.asset_state(asset_id)
        if state is None:
            raise HTTPException(404, f"asset {asset_id} has no state")
        return state

    @api.get(
        "/sites/{site_id}/buildings/{building_id}/faults",
        response_model=PageOut[FaultRow],
        tags=["command model"],
    )
    def open_faults(
        site_id: Id, building_id: Id, limit: Limit = 100, cursor: Cursor = None
    ) -> PageOut[FaultRow]:
        """Open faults of a building, oldest first."""
        return page_out(model.command.open_faults(site_id, building_id, limit=limit, cursor=cursor))

    @api.get("/sites/{site_id}/spikes", response_model=PageOut[SpikeRow], tags=["command model"])
    def spikes(
        site_id: Id,
        since_ms: Annotated[
            int | None, Query(description="default: a day ago", ge=0, le=MAX_TIME_MS)
        ] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> PageOut[SpikeRow]:
        """Energy spikes of a site that started at or after `since_ms`, newest first."""
        return page_out(
            model.command.spikes(site_id, since_ms, limit=limit, cursor=cursor, now_ms=now_ms())
        )

    @api.get(
        "/sites/{site_id}/spikes/open", response_model=PageOut[SpikeRow], tags=["command model"]
    )
    def open_spikes(site_id: Id, limit: Limit = 100, cursor: Cursor = None) -> PageOut[SpikeRow]:
        """Energy spikes of a site still in progress, whatever their start, oldest first."""
        return page_out(model.command.open_spikes(site_id, limit=limit, cursor=cursor))

    @api.get("/fleet", response_model=PageOut[SiteSummary], tags=["command model"])
    def fleet(limit: SummaryLimit = 20, cursor: Cursor = None) -> PageOut[SiteSummary]:
        """Per site, by id: buildings, assets, open faults, spikes that started in the last
        day. A page also ends before its sites' buildings pass 200."""
        return page_out(model.command.fleet_page(now_ms(), limit=limit, cursor=cursor))

    @api.get("/buildings", response_model=PageOut[BuildingSummary], tags=["command model"])
    def buildings(limit: SummaryLimit = 50, cursor: Cursor = None) -> PageOut[BuildingSummary]:
        """Buildings of the registry, by ids, with their rooms, assets and open faults."""
        return page_out(model.command.buildings_page(limit=limit, cursor=cursor))

    @api.get("/energy", response_model=PageOut[EnergyRow], tags=["query model"])
    def energy(  # noqa: PLR0917  (FastAPI maps each parameter to a query parameter)
        start_ms: Annotated[int, Query(ge=0, le=MAX_TIME_MS, description="range start, inclusive")],
        end_ms: Annotated[int, Query(ge=0, le=MAX_TIME_MS, description="range end, exclusive")],
        scope: Literal["site", "building", "room"] = "site",
        every: Literal["1h", "1d"] = "1h",
        site_id: IdFilter = None,
        building_id: IdFilter = None,
        room_id: IdFilter = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS, description="rows per page")] = 1000,
        cursor: Cursor = None,
    ) -> PageOut[EnergyRow]:
        """kWh per site, building or room per hour or UTC day (InfluxQL on the query model),
        ordered by window start then ids. A page reads a bounded slice of the range: it may
        hold fewer rows than `limit`, even none, while `next_cursor` is set."""
        return page_out(
            model.energy.energy(
                scope,
                every,
                start_ms,
                end_ms,
                site_id=site_id,
                building_id=building_id,
                room_id=room_id,
                limit=limit,
                cursor=cursor,
            )
        )

    @api.get("/series", response_model=PageOut[SeriesRow], tags=["query model"])
    def series(  # noqa: PLR0917  (FastAPI maps each parameter to a query parameter)
        start_ms: Annotated[int, Query(ge=0, le=MAX_TIME_MS, description="range start, inclusive")],
        end_ms: Annotated[int, Query(ge=0, le=MAX_TIME_MS, description="range end, exclusive")],
        scope: Literal["asset", "room", "building", "site"] = "asset",
        every: Annotated[
            str, Query(max_length=8, description="fine (the series interval) or 1h")
        ] = "fine",
        site_id: IdFilter = None,
        building_id: IdFilter = None,
        room_id: IdFilter = None,
        asset_id: IdFilter = None,
        limit: Annotated[int, Query(ge=1, le=MAX_SERIES_ROWS, description="rows per page")] = 1000,
        cursor: Cursor = None,
    ) -> PageOut[SeriesRow]:
        """Per-asset telemetry (mean, min, max, last of power, voltage, current, lux and dim
        level; on-fraction; readings) per fine interval (kept for days) or per hour (kept
        for a year) of one asset or a room's, building's or site's assets, ordered by time
        (InfluxQL on the query model). A page runs one bounded statement."""
        return page_out(
            model.series.series(
                scope,
                every,
                start_ms,
                end_ms,
                site_id=site_id,
                building_id=building_id,
                room_id=room_id,
                asset_id=asset_id,
                limit=limit,
                cursor=cursor,
            )
        )

    return api
