"""How domain events become the command model (one DynamoDB table) and the query model
(time series), as plain data. No AWS types: sinks convert (floats to ``Decimal``, etc.).

Command model, one table with string keys ``pk``/``sk``, designed from access patterns:

- current state of an asset: ``ASSET#<asset>`` / ``STATE``; GetItem.
- open faults of a building: ``gsi1pk = OPENFAULT#<site>#<building>``; Query on gsi1 (sparse).
- all faults of a building: ``BLDG#<site>#<building>`` / ``FAULT#...``; Query, begins_with.
- spikes of a site in the last day: ``SPIKE#<site>`` / ``<started_at_ms>#<asset>``; sk >= cutoff.
- usage of a room for a day: ``USAGE#<site>#<building>#<room>`` / ``<window_start_ms>#<asset>``;
  Query sk between.

Times in sort keys are zero-padded to 13 digits so string order is time order (until 2286).
Every item has ``type``, ``event_id`` and the event's fields. ``None`` values are part of the
item (write them as NULL or omit them); key attributes are never ``None``, they are absent.
"""

from __future__ import annotations

import msgspec

from domain.events import AssetState, EnergySpike, Fault, UsageReport

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
    table + dimensions + measure_name + time_ms; the same event always gives the same point."""

    table: str
    dimensions: dict[str, str]
    measure_name: str
    measures: dict[str, MeasureValue]
    time_ms: int


EVENTS_TABLE = "events"
USAGE_TABLE = "usage"
# Ranks the two versions of a fault so a replayed "open" never overwrites "cleared".
FAULT_REVISION = {"open": 1, "cleared": 2}


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


def command_writes(event: object) -> list[CommandWrite]:
    """The command-table items of an event; an empty list for objects it does not know.

    - ``AssetState``: ``ASSET#<asset>``/``STATE``, conditional on ``ts_ms`` (never backwards).
    - ``Fault``: ``BLDG#<site>#<building>``/``FAULT#<opened_at_ms:013d>#<asset>#<code>``; while
      open also ``gsi1pk=OPENFAULT#<site>#<building>`` and ``gsi1sk=sk`` (a cleared fault has
      neither, so it leaves the sparse index). Conditional on ``revision`` (open 1, cleared 2).
    - ``EnergySpike``: ``SPIKE#<site>``/``<started_at_ms:013d>#<asset>``.
    - ``UsageReport``: ``USAGE#<site>#<building>#<room>``/``<window_start_ms:013d>#<asset>``.
    """
    if isinstance(event, AssetState):
        item = _row(f"ASSET#{event.asset_id}", "STATE", event)
        return [CommandWrite(item, "ts_ms")]
    if isinstance(event, Fault):
        sk = fault_sk(event)
        item = _row(f"BLDG#{event.site_id}#{event.building_id}", sk, event)
        item["revision"] = FAULT_REVISION[event.status]
        if event.status == "open":
            item["gsi1pk"] = f"OPENFAULT#{event.site_id}#{event.building_id}"
            item["gsi1sk"] = sk
        return [CommandWrite(item, "revision")]
    if isinstance(event, EnergySpike):
        sk = f"{event.started_at_ms:013d}#{event.asset_id}"
        return [CommandWrite(_row(f"SPIKE#{event.site_id}", sk, event))]
    if isinstance(event, UsageReport):
        pk = f"USAGE#{event.site_id}#{event.building_id}#{event.room_id}"
        sk = f"{event.window_start_ms:013d}#{event.asset_id}"
        return [CommandWrite(_row(pk, sk, event))]
    return []


def _dimensions(event: Fault | EnergySpike | UsageReport) -> dict[str, str]:
    return {
        "site": event.site_id,
        "building": event.building_id,
        "room": event.room_id,
        "asset": event.asset_id,
    }


def time_points(event: object) -> list[TimePoint]:
    """The query-model records of an event; an empty list for ``AssetState`` and unknown objects.

    Points are immutable facts, so a replay re-writes identical points:
    - ``Fault`` open: table ``events``, measure ``fault_opened`` at ``opened_at_ms``;
      cleared: measure ``fault_cleared`` at ``cleared_at_ms`` (with ``duration_ms``).
    - ``EnergySpike``: ``events``, measure ``energy_spike`` at ``started_at_ms``.
    - ``UsageReport``: ``usage``, measure ``usage`` at ``window_start_ms``.
    """
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
            "ended_at_ms": event.ended_at_ms,
            "duration_ms": event.ended_at_ms - event.started_at_ms,
            "peak_w": event.peak_w,
            "threshold_w": event.threshold_w,
            "excess_wh": event.excess_wh,
            "rule": event.rule,
        }
        return [
            TimePoint(
                EVENTS_TABLE, _dimensions(event), "energy_spike", measures, event.started_at_ms
            )
        ]
    if isinstance(event, UsageReport):
        measures = {
            "kwh": event.kwh,
            "covered_ms": event.covered_ms,
            "coverage": event.coverage,
            "window_end_ms": event.window_end_ms,
        }
        return [
            TimePoint(USAGE_TABLE, _dimensions(event), "usage", measures, event.window_start_ms)
        ]
    return []
