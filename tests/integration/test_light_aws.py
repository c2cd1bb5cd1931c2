"""The light AWS client (`lighting.aws`, the KCL shard processor's) against moto over real
HTTP: for every operation the processor makes, the same response and the same errors as a
botocore client, blobs included; socket failures as botocore's exceptions."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from core.retry import is_retryable
from lighting.aws import jsonclient
from lighting.aws.credentials import StaticCredentials
from lighting.aws.http import ConnectionPool
from lighting.aws.sigv4 import Credentials
from tests.support.tables import create_pk_sk_table

pytestmark = pytest.mark.integration

AwsFactory = Callable[[str], Any]


def light(service: jsonclient.Service, endpoint: str) -> jsonclient.JsonClient:
    return jsonclient.JsonClient(
        service,
        region="us-east-1",
        credentials=StaticCredentials(Credentials("testing", "testing")),
        pool=ConnectionPool(connect_timeout_s=5, read_timeout_s=30),
        endpoint_url=endpoint,
    )


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


@pytest.fixture
def table(aws: AwsFactory, unique_name: Callable[[str], str]) -> str:
    name = unique_name("light")
    create_pk_sk_table(aws("dynamodb"), name)
    return name


def item(sk: str) -> dict[str, Any]:
    return {
        "pk": {"S": "site#1"},
        "sk": {"S": sk},
        "blob": {"B": b"\x00\xffstate"},
        "blobs": {"BS": [b"\x01", b"\x02\x03"]},
        "nested": {"M": {"deep": {"L": [{"B": b"\x04"}, {"N": "1.5"}, {"NULL": True}]}}},
        "flag": {"BOOL": False},
    }


def test_items_with_binary_attributes_read_back_as_botocore_reads_them(
    aws: AwsFactory, moto_endpoint: str, table: str
) -> None:
    client, botocore = light(jsonclient.DYNAMODB, moto_endpoint), aws("dynamodb")
    client.put_item(TableName=table, Item=item("a"))
    key = {"pk": {"S": "site#1"}, "sk": {"S": "a"}}
    got = client.get_item(TableName=table, Key=key, ConsistentRead=True)
    assert got["Item"] == item("a")
    assert without_metadata(got) == without_metadata(
        botocore.get_item(TableName=table, Key=key, ConsistentRead=True)
    )
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_batch_writes_updates_and_paginated_queries_match_botocore(
    aws: AwsFactory, moto_endpoint: str, table: str
) -> None:
    client, botocore = light(jsonclient.DYNAMODB, moto_endpoint), aws("dynamodb")
    written = client.batch_write_item(
        RequestItems={table: [{"PutRequest": {"Item": item(f"k{i}")}} for i in range(5)]}
    )
    assert written["UnprocessedItems"] == {}
    updated = client.update_item(
        TableName=table,
        Key={"pk": {"S": "site#1"}, "sk": {"S": "k0"}},
        UpdateExpression="SET #b = :b",
        ExpressionAttributeNames={"#b": "blob"},
        ExpressionAttributeValues={":b": {"B": b"new"}},
        ReturnValues="ALL_NEW",
    )
    assert updated["Attributes"]["blob"] == {"B": b"new"}
    query = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "site#1"}},
        "Limit": 2,
        "ConsistentRead": True,
    }
    pages = [without_metadata(p) for p in client.get_paginator("query").paginate(**query)]
    expected = [without_metadata(p) for p in botocore.get_paginator("query").paginate(**query)]
    assert pages == expected
    assert [i["sk"]["S"] for p in pages for i in p["Items"]] == [f"k{i}" for i in range(5)]


def test_a_failed_condition_is_botocores_client_error_with_the_stored_item(
    aws: AwsFactory, moto_endpoint: str, table: str
) -> None:
    client, botocore = light(jsonclient.DYNAMODB, moto_endpoint), aws("dynamodb")
    client.put_item(TableName=table, Item=item("c"))
    request = {
        "TableName": table,
        "Item": item("c"),
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    with pytest.raises(ClientError) as light_error:
        client.put_item(**request)
    with pytest.raises(ClientError) as botocore_error:
        botocore.put_item(**request)
    got, expected = light_error.value.response, botocore_error.value.response
    assert got["Error"] == expected["Error"]
    assert got["Error"]["Code"] == "ConditionalCheckFailedException"
    assert got["Item"] == expected["Item"] == item("c")
    assert light_error.value.operation_name == "PutItem"
    assert not is_retryable(light_error.value)


def test_a_cancelled_transaction_names_its_reasons_as_botocore_does(
    aws: AwsFactory, moto_endpoint: str, table: str
) -> None:
    client, botocore = light(jsonclient.DYNAMODB, moto_endpoint), aws("dynamodb")
    client.put_item(TableName=table, Item=item("t"))
    request = {
        "TransactItems": [
            {
                "Put": {
                    "TableName": table,
                    "Item": item("t"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
    }
    with pytest.raises(ClientError) as light_error:
        client.transact_write_items(**request)
    with pytest.raises(ClientError) as botocore_error:
        botocore.transact_write_items(**request)
    got, expected = light_error.value.response, botocore_error.value.response
    assert got["Error"]["Code"] == expected["Error"]["Code"] == "TransactionCanceledException"
    assert got.get("CancellationReasons") == expected.get("CancellationReasons")


def test_a_missing_table_is_the_same_error(aws: AwsFactory, moto_endpoint: str) -> None:
    client = light(jsonclient.DYNAMODB, moto_endpoint)
    with pytest.raises(ClientError) as light_error:
        client.get_item(TableName="no-such-table", Key={"pk": {"S": "x"}, "sk": {"S": "y"}})
    with pytest.raises(ClientError) as botocore_error:
        aws("dynamodb").get_item(
            TableName="no-such-table", Key={"pk": {"S": "x"}, "sk": {"S": "y"}}
        )
    assert light_error.value.response["Error"] == botocore_error.value.response["Error"]


def test_timestream_records_are_written_and_read_back(
    aws: AwsFactory, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = unique_name("lightdb")
    botocore = aws("timestream-write")
    botocore.create_database(DatabaseName=database)
    botocore.create_table(DatabaseName=database, TableName="points")
    client = light(jsonclient.TIMESTREAM_WRITE, moto_endpoint)
    answer = client.write_records(
        DatabaseName=database,
        TableName="points",
        Records=[
            {
                "Dimensions": [{"Name": "asset", "Value": "a1"}],
                "MeasureName": "watts",
                "MeasureValue": "12.5",
                "MeasureValueType": "DOUBLE",
                "Time": str(int(time.time() * 1000)),
            }
        ],
    )
    assert answer["RecordsIngested"]["Total"] == 1
    with pytest.raises(ClientError) as missing:
        client.write_records(DatabaseName=database, TableName="nope", Records=[])
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_binary_secret_reads_back_as_bytes(
    aws: AwsFactory, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("secret")
    aws("secretsmanager").create_secret(Name=name, SecretBinary=b"\x00token")
    client = light(jsonclient.SECRETS_MANAGER, moto_endpoint)
    assert client.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00token"


def test_a_refused_connection_is_botocores_retryable_endpoint_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = light(jsonclient.DYNAMODB, f"http://127.0.0.1:{port}")
    with pytest.raises(EndpointConnectionError) as refused:
        client.get_item(TableName="t", Key={})
    assert is_retryable(refused.value)


def test_an_operation_the_processor_never_makes_is_not_there(moto_endpoint: str) -> None:
    client = light(jsonclient.DYNAMODB, moto_endpoint)
    with pytest.raises(AttributeError):
        client.create_table  # noqa: B018
