"""Per-shard wiring of the lighting app: the sinks of one shard (DynamoDB command model,
Timestream query model, dead letters), the engine that drives them, and shard lineage."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from core.clock import HOUR_MS, wall_clock_ms
from core.records import DeadLetter
from core.retry import Backoff
from domain import views
from lighting.clients import Clients
from lighting.settings import Settings
from sinks.base import Sink
from sinks.deadletter import DeadLetterSink
from sinks.dynamodb import DynamoDBSink
from sinks.timestream import TimestreamSink
from streams.app import App
from streams.checkpoints import Checkpointer
from streams.engine import EngineConfig, ShardEngine
from streams.kinesis import partition_hash
from streams.leases import LeaseTable
from streams.processor import EngineFactory, Lineage
from tables.store import StateStore


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        checkpoint_interval_ms=settings.checkpoint_interval_ms,
        idle_timeout_ms=settings.idle_timeout_ms,
    )


def shard_sinks(
    settings: Settings, clients: Clients, dead_letter: Sink, shard_id: str
) -> list[Sink]:
    """The command-model and query-model sinks of one shard. Points the query store rejects
    (too old for the memory store with magnetic writes off, ...) go to `dead_letter`."""

    def reject_point(point: object, reason: str) -> None:
        dead_letter.write(
            DeadLetter(
                shard_id,
                0,
                0,
                "",
                "timestream",
                reason,
                msgspec.json.encode(point),
                wall_clock_ms(),
                detail_key=point_key(point),
            )
        )

    return [
        DynamoDBSink(
            clients.dynamodb,
            settings.command_table,
            views.command_writes,
            Backoff(),
            # Current state: only the newest per asset is turned into a request, at flush.
            coalesce=views.current_state_key,
        ),
        TimestreamSink(
            clients.timestream,
            settings.timestream_database,
            views.time_points,
            Backoff(),
            memory_retention_ms=settings.timestream_memory_retention_hours * HOUR_MS,
            magnetic_store_writes=settings.timestream_magnetic_writes,
            now_ms=wall_clock_ms,
            reject=reject_point,
            common_attributes=settings.timestream_common_attributes,
        ),
    ]


def engine_factory(
    settings: Settings,
    clients: Clients,
    app: App,
    state_store: StateStore,
    lineage: Callable[[str], Lineage] | None = None,
) -> EngineFactory:
    """One engine per shard, each with its own sinks and dead-letter buffer."""

    def build(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
        dead_letter = DeadLetterSink(clients.dynamodb, settings.dead_letter_table, Backoff())
        return ShardEngine(
            app,
            shard_id,
            sinks=shard_sinks(settings, clients, dead_letter, shard_id),
            dead_letter=dead_letter,
            state_store=state_store,
            checkpointer=checkpointer,
            config=engine_config(settings),
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
        return Lineage(lease.parent_ids, lambda pk: lease.owns(partition_hash(pk)))

    return lineage


def point_key(point: object) -> str:
    """The identity of a rejected query-model point within its dead letter."""
    dims = getattr(point, "dimensions", {})
    name = getattr(point, "measure_name", "")
    return f"{name}#{dims.get('asset', '')}#{getattr(point, 'time_ms', 0)}"
