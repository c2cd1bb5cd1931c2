"""Reads of the command model (DynamoDB), by the access patterns the table was designed for
(`domain.views`): asset state (GetItem), open faults of a building (Query on the sparse index
`gsi1`), spikes of a site since a time (Query, sk >= the time), and a fleet summary built
from the registry items (pk `REGISTRY`) plus those queries. Strongly consistent where the
table allows it (not on the index)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from core.clock import DAY_MS
from core.errors import LuxflowError
from core.retry import describe_error
from domain.registry import Registry
from lighting.read.rows import (
    AssetStateRow,
    BuildingSummary,
    FaultRow,
    Page,
    QueryError,
    SiteSummary,
    SpikeRow,
    decode_cursor,
    encode_cursor,
)
from sinks.attrvalues import from_item

MAX_PAGE: Final = 1_000


class ReadError(LuxflowError):
    """The command model could not be read (table missing, throttled, unreachable)."""


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
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
    return SpikeRow(
        site_id=str(item["site_id"]),
        building_id=str(item["building_id"]),
        room_id=str(item["room_id"]),
        asset_id=str(item["asset_id"]),
        level=str(item.get("level", "asset")),
        rule=str(item["rule"]),
        started_at_ms=int(item["started_at_ms"]),
        ended_at_ms=int(item["ended_at_ms"]),
        peak_w=float(item["peak_w"]),
        threshold_w=float(item["threshold_w"]),
        excess_wh=float(item["excess_wh"]),
        event_id=str(item["event_id"]),
    )


class CommandReader:
    """The command-model queries over one DynamoDB table (low-level client)."""

    def __init__(self, dynamodb: Any, table: str, load_registry: Callable[[], Registry]) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._load_registry = load_registry

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
        self, what: str, limit: int, cursor: str | None, **kwargs: Any
    ) -> tuple[list[dict[str, Any]], str | None]:
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor)
        response = self._call(what, self._dynamodb.query, Limit=_page_size(limit), **kwargs)
        items = [from_item(raw) for raw in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return items, encode_cursor(last) if last else None

    def open_faults(
        self, site_id: str, building_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[FaultRow]:
        """Open faults of a building, oldest first (sparse index: cleared ones are not in it)."""
        items, next_cursor = self._query(
            "Query open faults",
            limit,
            cursor,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"OPENFAULT#{site_id}#{building_id}"}},
        )
        return Page([fault_row(item) for item in items], next_cursor)

    def spikes(
        self,
        site_id: str,
        since_ms: int,
        *,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = True,
    ) -> Page[SpikeRow]:
        """Energy spikes of a site that started at or after `since_ms` (asset and site level)."""
        items, next_cursor = self._query(
            "Query spikes",
            limit,
            cursor,
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={
                ":pk": {"S": f"SPIKE#{site_id}"},
                ":since": {"S": f"{max(0, since_ms):013d}"},
            },
            ScanIndexForward=not newest_first,
            ConsistentRead=True,
        )
        return Page([spike_row(item) for item in items], next_cursor)

    def _all_open_faults(self, site_id: str, building_id: str) -> list[FaultRow]:
        rows: list[FaultRow] = []
        cursor: str | None = None
        while True:
            page = self.open_faults(site_id, building_id, limit=MAX_PAGE, cursor=cursor)
            rows.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return rows

    def _spike_count(self, site_id: str, since_ms: int) -> int:
        count = 0
        cursor: str | None = None
        while True:
            page = self.spikes(site_id, since_ms, limit=MAX_PAGE, cursor=cursor)
            count += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return count

    def buildings(self) -> list[BuildingSummary]:
        """Every building of the registry with its rooms, assets and open faults."""
        registry = self._load_registry()
        rooms: dict[tuple[str, str], set[str]] = {}
        assets: dict[tuple[str, str], int] = {}
        for asset in registry.assets.values():
            key = (asset.site_id, asset.building_id)
            rooms.setdefault(key, set()).add(asset.room_id)
            assets[key] = assets.get(key, 0) + 1
        return [
            BuildingSummary(
                site_id=site_id,
                building_id=building_id,
                rooms=len(rooms[(site_id, building_id)]),
                assets=assets[(site_id, building_id)],
                open_faults=len(self._all_open_faults(site_id, building_id)),
            )
            for site_id, building_id in sorted(assets)
        ]

    def fleet_summary(self, now_ms: int) -> list[SiteSummary]:
        """Per site: buildings, assets, open faults, and spikes that started in the last day."""
        per_site: dict[str, list[BuildingSummary]] = {}
        for building in self.buildings():
            per_site.setdefault(building.site_id, []).append(building)
        return [
            SiteSummary(
                site_id=site_id,
                buildings=len(buildings),
                assets=sum(b.assets for b in buildings),
                open_faults=sum(b.open_faults for b in buildings),
                spikes_last_day=self._spike_count(site_id, now_ms - DAY_MS),
            )
            for site_id, buildings in sorted(per_site.items())
        ]
