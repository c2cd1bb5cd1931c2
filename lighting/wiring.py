"""Per-shard wiring of the lighting app: the sinks of one shard (DynamoDB command model,
Timestream query model, dead letters), the engine that drives them, and shard lineage.

Both models move forward by one rule, the event's version (`sinks.versions`): the command sink
is flushed first and tells the shard's `Superseded` which writes a higher stored version beat;
the query sink, flushed next, drops those points, and its points carry their event's version
(`versioned_points`, from `domain.views.point_version`), which Timestream also enforces itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from core.clock import HOUR_MS, wall_clock_ms
from core.retry import Backoff
from domain import views
from domain.events import EnergySpike, UsageReport
from lighting.clients import Clients
from lighting.influx import influx_sink
from lighting.regions import HomeGate
from lighting.settings import Settings
from lighting.takeover import HeldOutputs, Takeover
from sinks.base import Sink
from sinks.deadletter import DeadLetterSink
from sinks.dynamodb import DynamoDBSink
from sinks.rejects import dead_letter_reject
from sinks.timestream import SelectPoints, TimestreamSink
from sinks.versions import Superseded, VersionedPoint
from streams.app import App
from streams.engine import ShardEngine, ShardEngineFactory
from streams.kinesis.leases import LeaseTable
from streams.kinesis.reader import hash_range_lineage
from streams.processor import Checkpointer, EngineConfig, Lineage
from tables.store import StateStore


def engine_config(
    settings: Settings, *, bounded: bool = False, save_in_background: bool = False
) -> EngineConfig:
    return EngineConfig(
        checkpoint_interval_ms=settings.checkpoint_interval_ms,
        idle_timeout_ms=settings.idle_timeout_ms,
        bounded=bounded,
        save_in_background=save_in_background,
        snapshot_format=settings.snapshot_format,
    )


def shard_sinks(
    settings: Settings,
    clients: Clients,
    dead_letter: Sink,
    shard_id: str,
    gate: HomeGate,
    *,
    backoff: Callable[[], Backoff] = Backoff,
    now_ms: Callable[[], int] = wall_clock_ms,
) -> list[Sink]:
    """The command-model and query-model sinks of one shard. Items and points the stores
    reject as invalid (a key too long, too old for the memory store with magnetic writes off,
    Timestream's RejectedRecords, ...) go to `dead_letter` and are never retried. Outputs pass
    the DR takeover rebase judged by `gate`, the worker's one home gate, from the stored
    episodes it looks up in the background (`lighting.takeover`: an output whose lookup is
    not answered yet waits in the last sink, which holds the checkpoint back; after
    `settings.takeover_hold_ms` it is dead-lettered). `backoff` makes each
    sink's retry policy and `now_ms` is their clock (injected by the benchmarks and tests;
    production uses the defaults)."""

    reject_item = dead_letter_reject(
        dead_letter, shard_id=shard_id, origin="dynamodb", detail_key=item_key, now_ms=now_ms
    )

    def reject_output(store: str, output: object, reason: str) -> None:
        dead_letter_reject(
            dead_letter, shard_id=shard_id, origin=store, detail_key=output_key, now_ms=now_ms
        )(output, reason)

    # What the command model proved superseded, read by the query sink flushed after it.
    superseded = Superseded()
    # DR: after a failover, an episode the lost region stored keeps its one identity; the
    # outputs whose stored episodes are not in memory yet wait in `hold`, the last sink.
    hold = HeldOutputs(
        Takeover(gate, gate.episodes),
        hold_ms=settings.takeover_hold_ms,
        now_ms=now_ms,
        dead_letter=reject_output,
    )
    query = query_model_sink(
        settings,
        clients,
        dead_letter,
        shard_id,
        hold.select(settings.query_model, versioned_points(views.time_points)),
        backoff=backoff,
        now_ms=now_ms,
        superseded=superseded,
    )
    command = DynamoDBSink(
        clients.dynamodb,
        settings.command_table,
        hold.select("dynamodb", views.command_writes),
        backoff(),
        # Current state: only the newest per asset is turned into a request, at flush.
        coalesce=views.current_state_key,
        reject=reject_item,
        on_superseded=superseded_by(superseded, query.write),
    )
    hold.attach("dynamodb", command)
    hold.attach(settings.query_model, query)
    return [command, query, hold]


# --- query model store chosen by LUXFLOW_QUERY_MODEL ---------------------------------
def query_model_sink(
    settings: Settings,
    clients: Clients,
    dead_letter: Sink,
    shard_id: str,
    select: Callable[[object], list[Any]] = views.time_points,
    *,
    backoff: Callable[[], Backoff] = Backoff,
    now_ms: Callable[[], int] = wall_clock_ms,
    superseded: Superseded | None = None,
) -> Sink:
    """The query-model sink of one shard: Timestream (LiveAnalytics) or InfluxDB, by
    `settings.query_model`. Points the store rejects become dead letters whose origin names
    the store (`timestream` or `influxdb`); points of event versions in `superseded` are not
    written."""

    reject_point = dead_letter_reject(
        dead_letter,
        shard_id=shard_id,
        origin=settings.query_model,
        detail_key=point_key,
        now_ms=now_ms,
    )

    if settings.query_model == "influxdb":
        return influx_sink(settings, clients, select, backoff, reject_point, superseded=superseded)
    return TimestreamSink(
        clients.timestream,
        settings.timestream_database,
        select,
        backoff(),
        memory_retention_ms=settings.timestream_memory_retention_hours * HOUR_MS,
        magnetic_store_writes=settings.timestream_magnetic_writes,
        now_ms=now_ms,
        reject=reject_point,
        common_attributes=settings.timestream_common_attributes,
        superseded=superseded,
    )


def versioned_points(select: SelectPoints) -> Callable[[object], list[Any]]:
    """`select`, with each point of a versioned event (`views.point_version`) carrying that
    event's identity and version."""

    def apply(output: object) -> list[Any]:
        points = list(select(output))
        order = views.point_version(output)
        if order is None:
            return points
        event_id = str(getattr(output, "event_id", ""))
        return [
            VersionedPoint(
                p.table,
                dict(p.dimensions),
                p.measure_name,
                dict(p.measures),
                p.time_ms,
                event_id,
                order,
            )
            for p in points
        ]

    return apply


_VERSIONED_TYPES: dict[str, type[UsageReport | EnergySpike]] = {
    "usage_report": UsageReport,
    "energy_spike": EnergySpike,
}
"""The command items whose query point can hold different values (`views.point_version`)."""


def superseded_by(
    superseded: Superseded, restore: Callable[[object], None] | None = None
) -> Callable[[Mapping[str, object], str, Mapping[str, object] | None], None]:
    """The command sink's `on_superseded`: notes the item's event and version, and hands the
    stored item's event, when it has a versioned point, to `restore` (the query sink's
    `write`): the query model then gets the version the command model holds, even when it
    never had it (a query store restored from an older backup, a region that took over sites
    whose fuller reports only the lost region's query store held)."""

    def note(item: Mapping[str, object], field: str, stored: Mapping[str, object] | None) -> None:
        version = item.get(field)
        if isinstance(version, int):
            superseded.note(str(item.get("event_id", "")), version)
        if restore is None or stored is None:
            return
        kind = _VERSIONED_TYPES.get(str(stored.get("type", "")))
        if kind is None:
            return
        try:
            event = msgspec.convert(stored, kind)
        except msgspec.ValidationError:
            return  # not an item this version of luxflow wrote: nothing to restore
        if views.point_version(event) is not None:
            restore(event)

    return note


# --- end query model store --------------------------------------------------------------------


def engine_factory(
    settings: Settings,
    clients: Clients,
    app: App,
    state_store: StateStore,
    *,
    gate: HomeGate,
    lineage: Callable[[str], Lineage] | None = None,
    bounded: bool = False,
    save_in_background: bool = False,
) -> ShardEngineFactory:
    """One engine per shard, each with its own sinks and dead-letter buffer; every shard's
    sinks share the worker's home `gate` (the one guarding `app`). `bounded`: a run that
    stops once its input is read (see `EngineConfig.bounded`); `save_in_background`: see
    `EngineConfig.save_in_background`."""

    def build(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
        dead_letter = DeadLetterSink(clients.dynamodb, settings.dead_letter_table, Backoff())
        return ShardEngine(
            app,
            shard_id,
            sinks=shard_sinks(settings, clients, dead_letter, shard_id, gate),
            dead_letter=dead_letter,
            state_store=state_store,
            checkpointer=checkpointer,
            config=engine_config(
                settings,
                bounded=bounded or settings.idle_close == "wall",
                save_in_background=save_in_background,
            ),
            lineage=lineage(shard_id) if lineage is not None else Lineage(),
        )

    return build


def lease_lineage(leases: LeaseTable) -> Callable[[str], Lineage]:
    """A shard's parents and hash range, read from its lease (the KCL protocol's initialize
    names no parents: the lease table does)."""

    def lineage(shard_id: str) -> Lineage:
        lease = leases.get(shard_id)
        if lease is None:
            return Lineage()
        return hash_range_lineage(lease.parent_ids, lease.hash_range)

    return lineage


def point_key(point: object) -> str:
    """The identity of a rejected query-model point within its dead letter."""
    dims = getattr(point, "dimensions", {})
    name = getattr(point, "measure_name", "")
    return f"{name}#{dims.get('asset', '')}#{getattr(point, 'time_ms', 0)}"


def output_key(output: object) -> str:
    """The identity of a dead-lettered output (a fault's or a spike's version) in its dead
    letter."""
    ended = getattr(output, "cleared_at_ms", None) or getattr(output, "ended_at_ms", None)
    return f"{type(output).__name__}#{getattr(output, 'event_id', '')}#{ended or ''}"


def item_key(item: Mapping[str, object]) -> str:
    """The identity of a rejected command-model item within its dead letter (the dead-letter
    sink hashes it when long)."""
    return f"{item.get('pk', '')}#{item.get('sk', '')}"
