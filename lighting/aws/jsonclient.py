"""The AWS JSON protocol, shaped as botocore's low-level clients: same method names, same
request parameters, same response dictionaries (blobs as `bytes`, `ResponseMetadata`), same
`ClientError` for an error answer. Only the operations the KCL shard processor makes exist
(`Service.operations`); any other name raises `AttributeError`, so a new call is noticed at
once rather than sent unchecked.

What botocore does that this does not: parameter validation before sending (the service
answers a `ValidationException` instead), its own retries (off in luxflow anyway), and
response fields typed as timestamps stay numbers (no operation here returns one that luxflow
reads).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec
from botocore.exceptions import ClientError

from lighting.aws.credentials import CredentialSource
from lighting.aws.http import Response
from lighting.aws.sigv4 import sign

USER_AGENT = "luxflow-light-aws/1"

Decode = Callable[[dict[str, Any]], None]
"""Turns the blobs of a parsed response (or modeled error) into `bytes`, in place."""


class Transport(Protocol):
    """Sends one POST and returns the whole answer, whatever its status; a failure to get
    one raises botocore's connection exceptions (`lighting.aws.http.ConnectionPool`)."""

    def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response: ...


def _no_blobs(_body: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Service:
    """One AWS JSON-protocol service as the light client speaks it."""

    endpoint_prefix: str
    signing_name: str
    target_prefix: str
    json_version: str
    operations: Mapping[str, str]
    """Low-level method name -> operation name."""
    decode: Decode = _no_blobs
    paginated: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Operation method -> (the request's start key, the response's next key)."""
    discovery: str | None = None
    """The method that discovers the endpoint to send requests to (Timestream), if any."""


# --- DynamoDB -------------------------------------------------------------------------------
def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    if "B" in value:
        return {"B": base64.b64decode(value["B"])}
    if "BS" in value:
        return {"BS": [base64.b64decode(v) for v in value["BS"]]}
    if "M" in value:
        return {"M": _item(value["M"])}
    if "L" in value:
        return {"L": [_attribute(v) for v in value["L"]]}
    return value


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _attribute(value) for name, value in item.items()}


def _decode_dynamodb(body: dict[str, Any]) -> None:
    """Binary attributes (B, BS, at any depth of M and L) of every item a response or a
    modeled error can carry."""
    for name in ("Item", "Attributes", "LastEvaluatedKey"):
        if isinstance(body.get(name), dict):
            body[name] = _item(body[name])
    if isinstance(body.get("Items"), list):
        body["Items"] = [_item(i) for i in body["Items"]]
    for requests in (body.get("UnprocessedItems") or {}).values():
        for request in requests:
            if "PutRequest" in request:
                request["PutRequest"]["Item"] = _item(request["PutRequest"]["Item"])
            if "DeleteRequest" in request:
                request["DeleteRequest"]["Key"] = _item(request["DeleteRequest"]["Key"])
    for keys in (body.get("UnprocessedKeys") or {}).values():
        keys["Keys"] = [_item(k) for k in keys.get("Keys", [])]
    responses = body.get("Responses")
    if isinstance(responses, dict):  # BatchGetItem: table -> items
        body["Responses"] = {t: [_item(i) for i in items] for t, items in responses.items()}
    elif isinstance(responses, list):  # TransactGetItems: [{"Item": ...}]
        for entry in responses:
            if isinstance(entry.get("Item"), dict):
                entry["Item"] = _item(entry["Item"])
    for reason in body.get("CancellationReasons") or []:
        if isinstance(reason.get("Item"), dict):
            reason["Item"] = _item(reason["Item"])


DYNAMODB = Service(
    endpoint_prefix="dynamodb",
    signing_name="dynamodb",
    target_prefix="DynamoDB_20120810",
    json_version="1.0",
    operations={
        "batch_get_item": "BatchGetItem",
        "batch_write_item": "BatchWriteItem",
        "delete_item": "DeleteItem",
        "describe_table": "DescribeTable",
        "get_item": "GetItem",
        "put_item": "PutItem",
        "query": "Query",
        "scan": "Scan",
        "transact_get_items": "TransactGetItems",
        "transact_write_items": "TransactWriteItems",
        "update_item": "UpdateItem",
    },
    decode=_decode_dynamodb,
    paginated={
        "query": ("ExclusiveStartKey", "LastEvaluatedKey"),
        "scan": ("ExclusiveStartKey", "LastEvaluatedKey"),
    },
)

TIMESTREAM_WRITE = Service(
    endpoint_prefix="ingest.timestream",
    signing_name="timestream",
    target_prefix="Timestream_20181101",
    json_version="1.0",
    operations={"describe_endpoints": "DescribeEndpoints", "write_records": "WriteRecords"},
    discovery="describe_endpoints",
)


def _decode_secret(body: dict[str, Any]) -> None:
    if isinstance(body.get("SecretBinary"), str):
        body["SecretBinary"] = base64.b64decode(body["SecretBinary"])


SECRETS_MANAGER = Service(
    endpoint_prefix="secretsmanager",
    signing_name="secretsmanager",
    target_prefix="secretsmanager",
    json_version="1.1",
    operations={"get_secret_value": "GetSecretValue"},
    decode=_decode_secret,
)


def default_endpoint(service: Service, region: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service.endpoint_prefix}.{region}.{domain}"


def _host(url: str) -> str:
    """The Host header botocore signs: the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class JsonClient:
    """A low-level client of one `Service` (thread-safe). `endpoint_url`: a fixed endpoint
    (an emulator, a VPC endpoint); then, as in botocore, no endpoint discovery is made."""

    def __init__(
        self,
        service: Service,
        *,
        region: str,
        credentials: CredentialSource,
        pool: Transport,
        endpoint_url: str | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self._service = service
        self._region = region
        self._credentials = credentials
        self._pool = pool
        self._endpoint = (endpoint_url or default_endpoint(service, region)).rstrip("/")
        self._discover = service.discovery is not None and not endpoint_url
        self._now_s = now_s
        self._lock = threading.Lock()
        self._discovered: tuple[str, float] | None = None

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        operation = self._service.operations.get(name)
        if operation is None:
            raise AttributeError(
                f"the light {self._service.endpoint_prefix} client has no method {name!r}"
            )

        def call(**params: Any) -> dict[str, Any]:
            return self.call(operation, params)

        call.__name__ = name
        return call

    def get_paginator(self, method: str) -> Paginator:
        tokens = self._service.paginated.get(method)
        if tokens is None:
            raise ValueError(f"the light client cannot paginate {method!r}")
        return Paginator(getattr(self, method), *tokens)

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One request of `operation`; the parsed response, or `ClientError`."""
        if not self._discover or operation == "DescribeEndpoints":
            return self._send(self._endpoint, operation, params)
        endpoint = self._endpoint_for_writes()
        try:
            return self._send(endpoint, operation, params)
        except ClientError as exc:
            if not _invalid_endpoint(exc):
                raise
        # The discovered endpoint moved (as botocore does: forget it, discover, send once more).
        with self._lock:
            self._discovered = None
        return self._send(self._endpoint_for_writes(), operation, params)

    def _endpoint_for_writes(self) -> str:
        with self._lock:
            if self._discovered is not None and self._discovered[1] > self._now_s():
                return self._discovered[0]
        answer = self._send(self._endpoint, "DescribeEndpoints", {})
        best = answer["Endpoints"][0]
        address = str(best["Address"])
        url = address if "://" in address else f"https://{address}"
        expires_s = self._now_s() + int(best.get("CachePeriodInMinutes", 1)) * 60
        with self._lock:
            self._discovered = (url, expires_s)
        return url

    def _send(self, endpoint: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        service = self._service
        body = msgspec.json.encode(params)
        headers = {
            "Host": _host(endpoint),
            "Content-Type": f"application/x-amz-json-{service.json_version}",
            "X-Amz-Target": f"{service.target_prefix}.{operation}",
            "User-Agent": USER_AGENT,
        }
        signed = sign(
            headers,
            body,
            credentials=self._credentials.current(),
            region=self._region,
            service=service.signing_name,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._now_s())),
        )
        response = self._pool.post(endpoint + "/", signed, body)
        parsed = _json_body(response.body)
        if response.status >= 300:
            raise ClientError(_error_response(parsed, response, service), operation)  # type: ignore[arg-type]
        service.decode(parsed)
        parsed["ResponseMetadata"] = _metadata(response)
        return parsed


class Paginator:
    """`get_paginator(name).paginate(**params)`: every page, following the next key."""

    def __init__(self, call: Callable[..., dict[str, Any]], start_key: str, next_key: str) -> None:
        self._call = call
        self._start_key = start_key
        self._next_key = next_key

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call(**params)
            yield page
            following = page.get(self._next_key)
            if not following:
                return
            params = {**params, self._start_key: following}


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _metadata(response: Response) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "HTTPStatusCode": response.status,
        "HTTPHeaders": response.headers,
        "RetryAttempts": 0,
    }
    if "x-amzn-requestid" in response.headers:
        metadata["RequestId"] = response.headers["x-amzn-requestid"]
    return metadata


def _error_response(body: dict[str, Any], response: Response, service: Service) -> dict[str, Any]:
    """botocore's error dictionary: `Error` {Code, Message} (the code without its namespace),
    `ResponseMetadata`, and the error's other fields at the top (a conditional failure's
    `Item`, a cancelled transaction's `CancellationReasons`, Timestream's `RejectedRecords`)."""
    code = str(body.get("__type") or response.status)
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = body.get("message", body.get("Message", ""))
    extra = {k: v for k, v in body.items() if k not in ("__type", "message", "Message")}
    service.decode(extra)
    return {
        **extra,
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": _metadata(response),
    }


def _invalid_endpoint(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return exc.response.get("Error", {}).get("Code") == "InvalidEndpointException" or status == 421
