"""The JSON read API, version 1. Every route is GET (read-only) and needs the bearer token.
Lists are paginated: `limit` rows per page and `next_cursor` to pass as `cursor` for the next
page (null on the last one). Times are integer milliseconds since the epoch (UTC)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from core.clock import DAY_MS
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

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of results."""

    items: list[T]
    next_cursor: str | None = None


def page_out(page: Page[T]) -> PageOut[T]:
    return PageOut[T](items=page.items, next_cursor=page.next_cursor)


Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


def router(model: ReadModel, now_ms: Callable[[], int], auth: Callable[..., None]) -> APIRouter:
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(auth)])

    @api.get("/assets/{asset_id}", response_model=AssetStateRow, tags=["command model"])
    def asset_state(asset_id: str) -> AssetStateRow:
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
        site_id: str, building_id: str, limit: Limit = 100, cursor: Cursor = None
    ) -> PageOut[FaultRow]:
        """Open faults of a building, oldest first."""
        return page_out(model.command.open_faults(site_id, building_id, limit=limit, cursor=cursor))

    @api.get("/sites/{site_id}/spikes", response_model=PageOut[SpikeRow], tags=["command model"])
    def spikes(
        site_id: str,
        since_ms: Annotated[int | None, Query(description="default: a day ago", ge=0)] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> PageOut[SpikeRow]:
        """Energy spikes of a site that started at or after `since_ms`, newest first."""
        since = since_ms if since_ms is not None else now_ms() - DAY_MS
        return page_out(model.command.spikes(site_id, since, limit=limit, cursor=cursor))

    @api.get("/fleet", response_model=list[SiteSummary], tags=["command model"])
    def fleet() -> list[SiteSummary]:
        """Per site: buildings, assets, open faults, spikes that started in the last day."""
        return model.command.fleet_summary(now_ms())

    @api.get("/buildings", response_model=list[BuildingSummary], tags=["command model"])
    def buildings() -> list[BuildingSummary]:
        """Every building of the registry with its rooms, assets and open faults."""
        return model.command.buildings()

    @api.get("/energy", response_model=PageOut[EnergyRow], tags=["query model"])
    def energy(  # noqa: PLR0917  (FastAPI maps each parameter to a query parameter)
        start_ms: Annotated[int, Query(ge=0, description="range start, inclusive")],
        end_ms: Annotated[int, Query(ge=0, description="range end, exclusive")],
        scope: Literal["site", "building", "room"] = "site",
        every: Literal["1h", "1d"] = "1h",
        site_id: str | None = None,
        building_id: str | None = None,
        room_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="rows per page")] = 1000,
        cursor: Cursor = None,
    ) -> PageOut[EnergyRow]:
        """kWh per site, building or room per hour or UTC day (InfluxQL on the query model)."""
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

    return api
