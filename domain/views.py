"""How domain events become the command model (one DynamoDB table) and the query model
(time series), as plain data. No AWS types: sinks convert (floats to ``Decimal``, etc.).

Command model, one table with string keys ``pk``/``sk``, designed from access patterns:

- current state of an asset: ``ASSET#<asset>`` / ``STATE``; GetItem.
- open faults of a building: ``gsi1pk = OPENFAULT#<site>#<building>``; Query on gsi1 (sparse).
- all faults of a building: ``BLDG#<site>#<building>`` / ``FAULT#...``; Query, begins_with.
- spikes of a site in the last day: ``SPIKE#<site>`` / ``<started_at_ms>#<asset>`` (a site's
  demand spike: ``<started_at_ms>#SITE#<rule>``); sk >= cutoff.
- spikes of a site in progress, whatever their start: ``gsi1pk = OPENSPIKE#<site>``; Query on
  gsi1 (sparse, like open faults).
- usage, one partition per scope: ``USAGE#<site>#<building>#<room>`` holds the room's and its
  assets' reports, ``USAGE#<site>#<building>`` the building's, ``USAGE#<site>`` the site's;
  sk ``<level>#<window>#<window_start_ms>#<id>`` with window ``1h`` or ``1d``. "Usage of a
  room for a day" is one Query: pk ``USAGE#s#b#r``, sk ``= room#1d#<day_start>#r`` for the total,
  or sk between ``asset#1h#<day_start>`` and ``asset#1h#<day_end>`` for its assets' hours.

Times in sort keys are zero-padded to 13 digits so string order is time order (until 2286).
Every item has ``type``, ``event_id`` and the event's fields. ``None`` values are part of the
item (write them as NULL or omit them); key attributes are never ``None``, they are absent.
"""

from __future__ import annotations

import msgspec

from domain.events import AssetState, EnergySpike, Fault, UsageReport
from domain.series import SERIES_TABLE, TelemetryRollup
from domain.series import measure_name as series_measure

ItemValue = str | int | float | bool | None
MeasureValue = float | int | str | bool


class CommandWrite(msgspec.Struct, frozen=True, gc=False):
    """One item to put into the command table.

    ``newer_than_field`` is ``None`` for a plain idempotent put. Otherwise the put must be
    conditional: write only if no item with this key exists or the stored item's
    ``newer_than_field`` is smaller than ``item[newer_than_field]``. A failed condition means
    the stored item is as new or newer: the write is done, not an error.
    """

    item: dict[str, ItemValue]
    newer_than_field: str | None = None


class TimePoint(msgspec.Struct, frozen=True, gc=False):
    """One multi-measure record of the query model. Identity (for idempotent re-writes) is
    table + dimensions + measure_name + time_ms; the same event always gives the same point.
    A later version of an event (a spike's closed one, a fuller usage report) gives the same
    identity; `point_version` says which version a point is, and the sinks keep the highest."""

    table: str
    dimensions: dict[str, str]
    measure_name: str
    measures: dict[str, MeasureValue]
    time_ms: int


EVENTS_TABLE = "events"
USAGE_TABLE = "usage"


_TYPE_NAMES: dict[type, str] = {
    Fault: "fault",
    EnergySpike: "energy_spike",
    UsageReport: "usage_report",
    AssetState: "asset_state",
}


def _row(
    pk: str, sk: str, event: Fault | EnergySpike | UsageReport | AssetState
) -> dict[str, ItemValue]:
    item: dict[str, ItemValue] = {"pk": pk, "sk": sk, "event_id": event.event_id}
    item.update(msgspec.structs.asdict(event))
    item["type"] = _TYPE_NAMES[type(event)]
    return item


def fault_sk(fault: Fault) -> str:
    """``FAULT#<opened_at_ms:013d>#<asset>#<code>``."""
    return f"FAULT#{fault.opened_at_ms:013d}#{fault.asset_id}#{fault.code}"


def window_name(window_ms: int) -> str:
    """``1h``, ``1d``, else ``<n>ms``: the window part of usage keys and measure names."""
    if window_ms == 3_600_000:
        return "1h"
    if window_ms == 86_400_000:
        return "1d"
    return f"{window_ms}ms"


def usage_key(report: UsageReport) -> tuple[str, str]:
    """``(pk, sk)`` of a usage report; see the module docstring."""
    level = report.level
    if level in ("asset", "room"):
        pk = f"USAGE#{report.site_id}#{report.building_id}#{report.room_id}"
    elif level == "building":
        pk = f"USAGE#{report.site_id}#{report.building_id}"
    else:
        pk = f"USAGE#{report.site_id}"
    subject = {
        "asset": report.asset_id,
        "room": report.room_id,
        "building": report.building_id,
        "site": report.site_id,
    }[level]
    window = window_name(report.window_ms)
    return pk, f"{level}#{window}#{report.window_start_ms:013d}#{subject}"


def command_writes(event: object) -> list[CommandWrite]:
    """The command-table items of an event; an empty list for objects it does not know.

    - ``AssetState``: ``ASSET#<asset>``/``STATE``, conditional on ``ts_ms`` (never backwards).
    - ``Fault``: ``BLDG#<site>#<building>``/``FAULT#<opened_at_ms:013d>#<asset>#<code>``; while
      open also ``gsi1pk=OPENFAULT#<site>#<building>`` and ``gsi1sk=sk`` (a cleared fault has
      neither, so it leaves the sparse index). Conditional on ``Fault.revision``
      (open 1, cleared 2, re-opened 3, ...).
    - ``EnergySpike``: ``SPIKE#<site>``/``<started_at_ms:013d>#<asset>``; a site-level spike
      ``<started_at_ms:013d>#SITE#<rule>``; while open also ``gsi1pk=OPENSPIKE#<site>`` and
      ``gsi1sk=sk``. Conditional on ``EnergySpike.revision`` (open 1, closed 2): the closed
      version replaces the open one, never the reverse (and leaves the sparse index).
    - ``UsageReport``: ``usage_key`` (pk by scope, sk ``<level>#<window>#<start:013d>#<id>``),
      with ``window_ms`` in the item. Conditional on ``covered_ms`` (more coverage wins).
    """
    if isinstance(event, AssetState):
        item = _row(f"ASSET#{event.asset_id}", "STATE", event)
        return [CommandWrite(item, "ts_ms")]
    if isinstance(event, Fault):
        sk = fault_sk(event)
        item = _row(f"BLDG#{event.site_id}#{event.building_id}", sk, event)
        item["revision"] = event.revision
        if event.status == "open":
            item["gsi1pk"] = f"OPENFAULT#{event.site_id}#{event.building_id}"
            item["gsi1sk"] = sk
        return [CommandWrite(item, "revision")]
    if isinstance(event, EnergySpike):
        subject = event.asset_id if event.level == "asset" else f"SITE#{event.rule}"
        sk = f"{event.started_at_ms:013d}#{subject}"
        item = _row(f"SPIKE#{event.site_id}", sk, event)
        item["revision"] = event.revision
        if event.status == "open":
            item["gsi1pk"] = f"OPENSPIKE#{event.site_id}"
            item["gsi1sk"] = sk
        return [CommandWrite(item, "revision")]
    if isinstance(event, UsageReport):
        pk, sk = usage_key(event)
        item = _row(pk, sk, event)
        item["window_ms"] = event.window_ms
        # More coverage wins: a report rebuilt from part of a window's readings (a replay from
        # a time, or a DR takeover from resent data) never replaces a fuller one.
        return [CommandWrite(item, "covered_ms")]
    return []


def current_state_key(event: object) -> tuple[str, int] | None:
    """``("ASSET#<asset>", ts_ms)`` for an ``AssetState``, ``None`` for anything else.

    A newer state of an asset supersedes every older one (its command write is conditional on
    ``ts_ms``), so a sink may keep only the newest per key: ``DynamoDBSink(coalesce=...)``.
    """
    if isinstance(event, AssetState):
        return f"ASSET#{event.asset_id}", event.ts_ms
    return None


def _dimensions(event: Fault | EnergySpike | UsageReport) -> dict[str, str]:
    """Ids as dimensions; empty ids (above-asset scopes) are left out, as Timestream refuses
    empty dimension values, and such scopes carry a ``level`` dimension instead."""
    dimensions = {
        "site": event.site_id,
        "building": event.building_id,
        "room": event.room_id,
        "asset": event.asset_id,
    }
    if event.level == "asset":
        return dimensions
    dimensions = {name: value for name, value in dimensions.items() if value}
    dimensions["level"] = event.level
    return dimensions


def time_points(event: object) -> list[TimePoint]:
    """The query-model records of an event; an empty list for ``AssetState`` and unknown objects.

    Points are immutable facts, so a replay re-writes identical points:
    - ``Fault`` open: table ``events``, measure ``fault_opened`` at ``opened_at_ms``;
      cleared: measure ``fault_cleared`` at ``cleared_at_ms`` (with ``duration_ms``).
    - ``EnergySpike``: ``events``, measure ``energy_spike`` at ``started_at_ms``, versioned by
      its ``revision`` (`point_version`): the open version's point (``status``, peak and
      excess so far) is replaced by the closed one's (same identity), which adds ``ended_at_ms`` and
      ``duration_ms``. The open point's measures are a subset of the closed one's, so a store
      that merges fields (InfluxDB) keeps none of the open version's values.
    - ``UsageReport``: ``usage``, measure ``usage`` (hourly) or ``usage_<window>`` (e.g.
      ``usage_1d``) at ``window_start_ms``; scopes above the asset have a ``level`` dimension.
    - ``TelemetryRollup``: ``series``, measure ``telemetry_<interval>`` (``telemetry_1m``,
      ``telemetry_1h``) at ``window_start_ms`` (``domain.series``).
    """
    if isinstance(event, TelemetryRollup):
        series: dict[str, MeasureValue] = {
            "readings": event.readings,
            "on_fraction": event.on_fraction,
            "last_ts_ms": event.last_ts_ms,
        }
        series.update(event.stats)
        dimensions = {
            "site": event.site_id,
            "building": event.building_id,
            "room": event.room_id,
            "asset": event.asset_id,
        }
        return [
            TimePoint(
                SERIES_TABLE,
                dimensions,
                series_measure(event.window_ms),
                series,
                event.window_start_ms,
            )
        ]
    if isinstance(event, Fault):
        measures: dict[str, MeasureValue] = {
            "event_id": event.event_id,
            "code": event.code,
            "opened_at_ms": event.opened_at_ms,
        }
        if event.cleared_at_ms is None:
            return [
                TimePoint(
                    EVENTS_TABLE, _dimensions(event), "fault_opened", measures, event.opened_at_ms
                )
            ]
        measures["cleared_at_ms"] = event.cleared_at_ms
        measures["duration_ms"] = event.cleared_at_ms - event.opened_at_ms
        return [
            TimePoint(
                EVENTS_TABLE, _dimensions(event), "fault_cleared", measures, event.cleared_at_ms
            )
        ]
    if isinstance(event, EnergySpike):
        measures = {
            "event_id": event.event_id,
            "status": event.status,
            "peak_w": event.peak_w,
            "threshold_w": event.threshold_w,
            "excess_wh": event.excess_wh,
            "rule": event.rule,
        }
        if event.ended_at_ms is not None:
            measures["ended_at_ms"] = event.ended_at_ms
            measures["duration_ms"] = event.ended_at_ms - event.started_at_ms
        return [
            TimePoint(
                EVENTS_TABLE,
                _dimensions(event),
                "energy_spike",
                measures,
                event.started_at_ms,
            )
        ]
    if isinstance(event, UsageReport):
        measures = {
            "kwh": event.kwh,
            "covered_ms": event.covered_ms,
            "coverage": event.coverage,
            "window_end_ms": event.window_end_ms,
        }
        window = window_name(event.window_ms)
        measure_name = "usage" if window == "1h" else f"usage_{window}"
        return [
            TimePoint(
                USAGE_TABLE, _dimensions(event), measure_name, measures, event.window_start_ms
            )
        ]
    return []


def point_version(event: object) -> int | None:
    """The version of an event's query-model point, on its command write's scale (the
    newer-than field), where one point can hold different values: a usage report's
    ``covered_ms`` (more coverage wins), a spike's ``revision`` (open 1, closed 2). ``None`` for
    points that are immutable facts: a fault's points are keyed by the time of its status, so
    each version of a fault is a point of its own."""
    if isinstance(event, UsageReport):
        return event.covered_ms
    if isinstance(event, EnergySpike):
        return event.revision
    return None
