"""Creating what a deployment needs, and reading the command model back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from domain import views
from domain.series import SERIES_TABLE
from lighting.clients import Clients
from lighting.influx import ensure_influxdb, influx_client
from lighting.settings import Settings
from sinks.attrvalues import from_item
from sinks.provision import ensure_command_table, ensure_dead_letter_table, ensure_timestream
from streams.kinesis.leases import LeaseTable
from tables.dynamodb import ensure_table as ensure_state_table

T = TypeVar("T")


def provision(settings: Settings, clients: Clients, *, shards: int | None = None) -> bool:
    """Create what a deployment needs, idempotently; the stream only when `shards` is given.
    Returns whether the stream exists afterwards."""
    stream_exists = False
    if shards is not None:
        with contextlib.suppress(clients.kinesis.exceptions.ResourceInUseException):
            clients.kinesis.create_stream(StreamName=settings.stream, ShardCount=shards)
        clients.kinesis.get_waiter("stream_exists").wait(
            StreamName=settings.stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        stream_exists = True
    else:
        with contextlib.suppress(clients.kinesis.exceptions.ResourceNotFoundException):
            clients.kinesis.describe_stream_summary(StreamName=settings.stream)
            stream_exists = True
    LeaseTable(clients.dynamodb, settings.app_name).ensure_table()
    ensure_command_table(clients.dynamodb, settings.command_table)
    ensure_dead_letter_table(clients.dynamodb, settings.dead_letter_table)
    ensure_state_table(clients.dynamodb, settings.state_table)
    if settings.query_model == "influxdb":
        ensure_influxdb(
            influx_client(settings, clients),
            hot_days=settings.series_hot_days if settings.series_interval_ms else 0,
            cold_days=settings.series_cold_days if settings.series_interval_ms else 0,
        )
        return stream_exists
    ensure_timestream(
        clients.timestream,
        settings.timestream_database,
        [views.EVENTS_TABLE, views.USAGE_TABLE],
        memory_retention_hours=settings.timestream_memory_retention_hours,
        magnetic_retention_days=settings.timestream_magnetic_retention_days,
        enable_magnetic_writes=settings.timestream_magnetic_writes,
    )
    if settings.series_interval_ms:
        # The series' own split: the memory store holds the hot week (fine and hourly points,
        # fast to query), the magnetic store the cold year.
        ensure_timestream(
            clients.timestream,
            settings.timestream_database,
            [SERIES_TABLE],
            memory_retention_hours=settings.series_hot_days * 24,
            magnetic_retention_days=settings.series_cold_days,
            enable_magnetic_writes=settings.timestream_magnetic_writes,
        )
    return stream_exists


def read_command_model(clients: Clients, settings: Settings) -> list[dict[str, Any]]:
    """Every item of the command table as plain Python values."""
    items: list[dict[str, Any]] = []
    paginator = clients.dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=settings.command_table, ConsistentRead=True):
        items.extend(from_item(raw) for raw in page["Items"])
    return items


def events_of(items: Iterable[dict[str, Any]], kind: type[T], type_name: str) -> list[T]:
    """The items of one type (`fault`, `energy_spike`, ...) decoded as `kind`."""
    return [msgspec.convert(i, kind) for i in items if i.get("type") == type_name]
