"""What the read side returns: plain frozen dataclasses (JSON, CSV and OpenAPI schemas are
derived from them), and one page of results with a signed cursor to the next
(`lighting.read.cursors`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from core.errors import LuxflowError

T = TypeVar("T")


class QueryError(LuxflowError):
    """A query was asked wrongly (bad cursor, range, scope): the caller fixes it."""


@dataclass(frozen=True)
class AssetStateRow:
    asset_id: str
    site_id: str
    building_id: str
    room_id: str
    ts_ms: int
    power_w: float
    on: bool
    dim_level: int
    fault_code: str | None = None


@dataclass(frozen=True)
class FaultRow:
    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    code: str
    opened_at_ms: int
    status: str
    cleared_at_ms: int | None
    event_id: str


@dataclass(frozen=True)
class SpikeRow:
    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    level: str
    rule: str
    started_at_ms: int
    ended_at_ms: int | None
    peak_w: float
    threshold_w: float
    excess_wh: float
    event_id: str
    status: str = "closed"
    """``open`` while the spike is in progress (no ``ended_at_ms``, peak and excess so far)."""


@dataclass(frozen=True)
class EnergyRow:
    """Energy of one scope in one hour or day (UTC): the sum of its closed hourly windows."""

    scope: str
    site_id: str
    building_id: str
    room_id: str
    every: str
    window_start_ms: int
    kwh: float


@dataclass(frozen=True)
class BuildingSummary:
    site_id: str
    building_id: str
    rooms: int
    assets: int
    open_faults: int


@dataclass(frozen=True)
class SiteSummary:
    site_id: str
    buildings: int
    assets: int
    open_faults: int
    spikes_last_day: int


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows; `next_cursor` fetches the next, `None` on the last page."""

    items: list[T]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def row_dict(row: Any) -> dict[str, Any]:
    """A row's fields in declaration order."""
    return {f.name: getattr(row, f.name) for f in fields(row)}
