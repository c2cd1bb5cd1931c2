"""Error answers and binary attributes in the light client's shapes (no network: the parsing
functions on answers as the services send them)."""

from __future__ import annotations

import base64

from botocore.exceptions import ClientError

from core.retry import is_retryable, is_throttle
from lighting.aws import jsonclient
from lighting.aws.http import Response


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
