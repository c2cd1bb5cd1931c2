"""Error answers, binary attributes and Timestream's endpoint discovery in the light client
(no network: answers as the services send them, through a transport that plays the service)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from core.retry import is_retryable, is_throttle
from lighting.aws import jsonclient
from lighting.aws.credentials import StaticCredentials
from lighting.aws.http import Response
from lighting.aws.sigv4 import Credentials


def error(
    status: int, body: bytes, service: jsonclient.Service = jsonclient.DYNAMODB
) -> ClientError:
    response = Response(status, {"x-amzn-requestid": "req-1"}, body)
    parsed = jsonclient._json_body(body)
    return ClientError(jsonclient._error_response(parsed, response, service), "PutItem")  # type: ignore[arg-type]


def test_a_throttle_names_its_code_without_the_namespace_and_is_retried() -> None:
    exc = error(
        400,
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        b'"message":"Rate exceeded"}',
    )
    assert exc.response["Error"] == {
        "Code": "ProvisionedThroughputExceededException",
        "Message": "Rate exceeded",
    }
    assert exc.response["ResponseMetadata"]["RequestId"] == "req-1"
    assert is_throttle(exc) and is_retryable(exc)


def test_a_5xx_without_a_json_body_is_its_status_and_is_retried() -> None:
    exc = error(503, b"<html>Service Unavailable</html>")
    assert exc.response["Error"] == {"Code": "503", "Message": ""}
    assert is_retryable(exc)


def test_a_validation_error_is_not_retried() -> None:
    exc = error(400, b'{"__type":"ValidationException","Message":"Item size too large"}')
    assert exc.response["Error"]["Code"] == "ValidationException"
    assert not is_retryable(exc)


def test_unprocessed_items_keep_their_binary_attributes_as_bytes() -> None:
    blob = base64.b64encode(b"\x00\x01").decode()
    body = {
        "UnprocessedItems": {
            "t": [
                {"PutRequest": {"Item": {"pk": {"S": "a"}, "v": {"B": blob}}}},
                {"DeleteRequest": {"Key": {"pk": {"B": blob}}}},
            ]
        }
    }
    jsonclient.DYNAMODB.decode(body)
    assert body["UnprocessedItems"]["t"] == [
        {"PutRequest": {"Item": {"pk": {"S": "a"}, "v": {"B": b"\x00\x01"}}}},
        {"DeleteRequest": {"Key": {"pk": {"B": b"\x00\x01"}}}},
    ]


def test_timestreams_rejected_records_are_at_the_top_of_the_error() -> None:
    exc = error(
        419,
        b'{"__type":"RejectedRecordsException","message":"m",'
        b'"RejectedRecords":[{"RecordIndex":1,"Reason":"too old"}]}',
        jsonclient.TIMESTREAM_WRITE,
    )
    assert exc.response["Error"]["Code"] == "RejectedRecordsException"
    assert exc.response["RejectedRecords"] == [{"RecordIndex": 1, "Reason": "too old"}]


def test_the_signed_host_leaves_out_the_default_port() -> None:
    assert jsonclient._host("https://dynamodb.eu-west-1.amazonaws.com") == (
        "dynamodb.eu-west-1.amazonaws.com"
    )
    assert jsonclient._host("http://127.0.0.1:4566") == "127.0.0.1:4566"
    assert jsonclient._host("http://127.0.0.1:80") == "127.0.0.1"


class Service:
    """The far side of the transport: answers by operation, keeps every request's URL."""

    def __init__(self, answers: dict[str, list[tuple[int, bytes]]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str]] = []

    def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        operation = headers["X-Amz-Target"].split(".")[1]
        self.sent.append((operation, url))
        status, answer = self.answers[operation].pop(0)
        return Response(status, {}, answer)


def endpoints(address: str) -> tuple[int, bytes]:
    return 200, json.dumps(
        {"Endpoints": [{"Address": address, "CachePeriodInMinutes": 1}]}
    ).encode()


WRITTEN = (200, b'{"RecordsIngested":{"Total":1}}')


def timestream(service: Service, now: list[float], endpoint_url: str | None = None) -> Any:
    return jsonclient.JsonClient(
        jsonclient.TIMESTREAM_WRITE,
        region="eu-west-1",
        credentials=StaticCredentials(Credentials("AK", "SK")),
        pool=service,
        endpoint_url=endpoint_url,
        now_s=lambda: now[0],
    )


def test_timestream_writes_go_to_the_discovered_endpoint_until_its_cache_period_ends() -> None:
    service = Service(
        {
            "DescribeEndpoints": [endpoints("cell1.example"), endpoints("cell2.example")],
            "WriteRecords": [WRITTEN, WRITTEN, WRITTEN],
        }
    )
    now = [1_000.0]
    client = timestream(service, now)
    client.write_records(DatabaseName="d", TableName="t", Records=[])
    client.write_records(DatabaseName="d", TableName="t", Records=[])
    now[0] += 61
    client.write_records(DatabaseName="d", TableName="t", Records=[])
    assert service.sent == [
        ("DescribeEndpoints", "https://ingest.timestream.eu-west-1.amazonaws.com/"),
        ("WriteRecords", "https://cell1.example/"),
        ("WriteRecords", "https://cell1.example/"),
        ("DescribeEndpoints", "https://ingest.timestream.eu-west-1.amazonaws.com/"),
        ("WriteRecords", "https://cell2.example/"),
    ]


def test_an_endpoint_that_moved_is_discovered_again_and_the_write_sent_once_more() -> None:
    moved = (421, b'{"__type":"InvalidEndpointException","message":"moved"}')
    service = Service(
        {
            "DescribeEndpoints": [endpoints("cell1.example"), endpoints("cell2.example")],
            "WriteRecords": [moved, WRITTEN],
        }
    )
    answer = timestream(service, [1_000.0]).write_records(
        DatabaseName="d", TableName="t", Records=[]
    )
    assert answer["RecordsIngested"] == {"Total": 1}
    assert [url for _, url in service.sent][-1] == "https://cell2.example/"


def test_a_fixed_endpoint_is_used_as_it_is_without_discovery() -> None:
    service = Service({"WriteRecords": [WRITTEN]})
    timestream(service, [0.0], "http://127.0.0.1:5000").write_records(Records=[])
    assert service.sent == [("WriteRecords", "http://127.0.0.1:5000/")]
