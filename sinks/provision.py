"""Create the tables the sinks write to, idempotently, and wait until they are ACTIVE.

Each `ensure_*` describes first and creates only what is missing, so running it against a
live deployment changes nothing it should not. An existing table with a different key schema
is an error (`ConfigError`), never silently reused. Timestream table settings (retention,
magnetic store writes) are updated to the requested ones when they differ.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import ConfigError
from core.retry import describe_error, error_code
from sinks.influxhttp import InfluxError, InfluxHTTP

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_timestream_write import TimestreamWriteClient

WAIT_TIMEOUT_S = 300.0
POLL_INTERVAL_S = 0.5


def _wait(what: str, is_active: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not is_active():
        if time.monotonic() > deadline:
            raise ConfigError(f"{what} did not become ACTIVE within {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)


def _describe_table(client: DynamoDBClient, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise ConfigError(f"cannot describe DynamoDB table {name}: {describe_error(exc)}") from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot reach DynamoDB for table {name}: {exc}") from exc


def _table_active(client: DynamoDBClient, name: str) -> bool:
    table = _describe_table(client, name)
    if table is None:
        return False
    indexes = table.get("GlobalSecondaryIndexes", [])
    return table.get("TableStatus") == "ACTIVE" and all(
        index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
    )


def _key_of(table: dict[str, Any]) -> list[tuple[str, str, str]]:
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])}
    return [
        (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
        for k in table.get("KeySchema", [])
    ]


def _ensure_dynamodb_table(
    client: DynamoDBClient,
    name: str,
    key: list[tuple[str, str, str]],
    extra: dict[str, Any],
    timeout_s: float,
) -> None:
    """`key` is [(attribute, "HASH"|"RANGE", "S"|"N"|"B")]."""
    wanted_schema = [{"AttributeName": a, "KeyType": k} for a, k, _ in key]
    table = _describe_table(client, name)
    if table is None:
        definitions = [{"AttributeName": a, "AttributeType": t} for a, _, t in key]
        definitions += extra.pop("ExtraAttributeDefinitions", [])
        try:
            client.create_table(
                TableName=name,
                KeySchema=wanted_schema,  # type: ignore[arg-type]
                AttributeDefinitions=definitions,  # type: ignore[arg-type]
                BillingMode="PAY_PER_REQUEST",
                **extra,
            )
        except ClientError as exc:
            # Another worker created it between our describe and create: fine.
            if error_code(exc) != "ResourceInUseException":
                raise ConfigError(
                    f"cannot create DynamoDB table {name}: {describe_error(exc)}"
                ) from exc
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach DynamoDB to create {name}: {exc}") from exc
    elif _key_of(table) != key:
        raise ConfigError(
            f"DynamoDB table {name} exists with key schema {_key_of(table)}, expected {key}"
        )
    _wait(f"DynamoDB table {name}", lambda: _table_active(client, name), timeout_s)


def ensure_command_table(
    client: DynamoDBClient, name: str, *, timeout_s: float = WAIT_TIMEOUT_S
) -> None:
    """The command model table: pk/sk strings, on-demand, GSI `gsi1` (gsi1pk/gsi1sk, ALL)."""
    _ensure_dynamodb_table(
        client,
        name,
        [("pk", "HASH", "S"), ("sk", "RANGE", "S")],
        {
            "ExtraAttributeDefinitions": [
                {"AttributeName": "gsi1pk", "AttributeType": "S"},
                {"AttributeName": "gsi1sk", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
        timeout_s,
    )


def ensure_dead_letter_table(
    client: DynamoDBClient, name: str, *, timeout_s: float = WAIT_TIMEOUT_S
) -> None:
    """The dead-letter table: pk string (the letter's identity), sk number (chunk), on-demand."""
    _ensure_dynamodb_table(client, name, [("pk", "HASH", "S"), ("sk", "RANGE", "N")], {}, timeout_s)


def ensure_timestream(
    client: TimestreamWriteClient,
    database: str,
    tables: Iterable[str],
    *,
    memory_retention_hours: int,
    magnetic_retention_days: int,
    enable_magnetic_writes: bool,
    timeout_s: float = WAIT_TIMEOUT_S,
) -> None:
    """The query model database and tables with the given retention.

    `enable_magnetic_writes` must be True for a `TimestreamSink` built with
    `magnetic_store_writes=True`, or the service rejects its late points.
    """
    retention = {
        "MemoryStoreRetentionPeriodInHours": memory_retention_hours,
        "MagneticStoreRetentionPeriodInDays": magnetic_retention_days,
    }
    magnetic = {"EnableMagneticStoreWrites": enable_magnetic_writes}
    try:
        try:
            client.describe_database(DatabaseName=database)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            try:
                client.create_database(DatabaseName=database)
            except ClientError as create_exc:
                if error_code(create_exc) != "ConflictException":
                    raise
        for table in tables:
            _ensure_timestream_table(client, database, table, retention, magnetic)
            _wait(
                f"Timestream table {database}.{table}",
                functools.partial(_timestream_table_active, client, database, table),
                timeout_s,
            )
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(
            f"cannot provision Timestream database {database}: {describe_error(exc)}"
        ) from exc


def _ensure_timestream_table(
    client: TimestreamWriteClient,
    database: str,
    table: str,
    retention: dict[str, int],
    magnetic: dict[str, bool],
) -> None:
    try:
        current = client.describe_table(DatabaseName=database, TableName=table)["Table"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    else:
        current_magnetic = current.get("MagneticStoreWriteProperties", {})
        if (
            current.get("RetentionProperties") != retention
            or current_magnetic.get("EnableMagneticStoreWrites")
            != magnetic["EnableMagneticStoreWrites"]
        ):
            # Both properties in one update: leaving one out may reset it.
            client.update_table(
                DatabaseName=database,
                TableName=table,
                RetentionProperties=retention,  # type: ignore[arg-type]
                MagneticStoreWriteProperties=magnetic,  # type: ignore[arg-type]
            )
        return
    try:
        client.create_table(
            DatabaseName=database,
            TableName=table,
            RetentionProperties=retention,  # type: ignore[arg-type]
            MagneticStoreWriteProperties=magnetic,  # type: ignore[arg-type]
        )
    except ClientError as exc:
        if error_code(exc) != "ConflictException":
            raise


def _timestream_table_active(client: TimestreamWriteClient, database: str, table: str) -> bool:
    try:
        status = client.describe_table(DatabaseName=database, TableName=table)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return status.get("TableStatus") == "ACTIVE"


def ensure_retention_policy(client: InfluxHTTP, name: str, days: int) -> None:
    """The InfluxDB retention policy `name` on the client's database, keeping `days` days:
    created, or altered when it exists with another duration (InfluxDB 1.8 refuses a CREATE
    that differs from the existing policy). Never the default policy: events and usage stay in
    the database's default. Raises `InfluxError` as the client does."""
    database = client.database.replace('"', '\\"')
    policy = name.replace('"', '\\"')
    spec = f'"{policy}" ON "{database}" DURATION {int(days)}d REPLICATION 1'
    try:
        client.query(f"CREATE RETENTION POLICY {spec}", method="POST")
    except InfluxError as exc:
        if "already exists" not in str(exc):
            raise
        client.query(f"ALTER RETENTION POLICY {spec}", method="POST")
