"""Table provisioning against a moto server: idempotent, and loud about a wrong schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.errors import ConfigError
from sinks.provision import ensure_command_table, ensure_dead_letter_table, ensure_timestream

pytestmark = pytest.mark.integration


@pytest.fixture
def ddb(aws: Callable[[str], Any]) -> Any:
    return aws("dynamodb")


def test_command_table_is_created_once_with_its_index(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("cmd")
    ensure_command_table(ddb, name)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    ensure_command_table(ddb, name)  # again: nothing changes, nothing is lost
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert ddb.scan(TableName=name)["Count"] == 1


def test_dead_letter_table_has_a_numeric_chunk_key(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("dlq")
    ensure_dead_letter_table(ddb, name)
    ensure_dead_letter_table(ddb, name)
    types = {
        d["AttributeName"]: d["AttributeType"]
        for d in ddb.describe_table(TableName=name)["Table"]["AttributeDefinitions"]
    }
    assert types == {"pk": "S", "sk": "N"}


def test_an_existing_table_with_another_key_schema_is_an_error(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("cmd")
    ensure_dead_letter_table(ddb, name)
    with pytest.raises(ConfigError, match="key schema"):
        ensure_command_table(ddb, name)
    other = unique_name("dlq")
    ddb.create_table(
        TableName=other,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ConfigError, match="key schema"):
        ensure_dead_letter_table(ddb, other)


def test_timestream_is_idempotent_and_converges_settings(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    tsw = aws("timestream-write")
    database = unique_name("ts")
    settings = {"memory_retention_hours": 12, "magnetic_retention_days": 30}
    ensure_timestream(tsw, database, ["rollups"], **settings, enable_magnetic_writes=False)
    tsw.write_records(
        DatabaseName=database,
        TableName="rollups",
        Records=[
            {
                "Dimensions": [{"Name": "asset", "Value": "a1"}],
                "MeasureName": "m",
                "MeasureValueType": "MULTI",
                "MeasureValues": [{"Name": "x", "Value": "1", "Type": "BIGINT"}],
                "Time": "1",
                "TimeUnit": "MILLISECONDS",
            }
        ],
    )
    ensure_timestream(tsw, database, ["rollups", "events"], **settings, enable_magnetic_writes=True)
    for table in ("rollups", "events"):
        described = tsw.describe_table(DatabaseName=database, TableName=table)["Table"]
        assert described["TableStatus"] == "ACTIVE"
        assert described["RetentionProperties"] == {
            "MemoryStoreRetentionPeriodInHours": 12,
            "MagneticStoreRetentionPeriodInDays": 30,
        }
        assert described["MagneticStoreWriteProperties"]["EnableMagneticStoreWrites"] is True


def test_unreachable_endpoint_is_a_clear_error(unique_name: Callable[[str], str]) -> None:
    import boto3
    from botocore.config import Config

    from emulators.moto import free_port

    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(ConfigError, match="cannot reach DynamoDB"):
        ensure_command_table(client, unique_name("cmd"))
