"""A real boto3 client with faults that emulators cannot produce, injected deterministically.

`FaultyClient(real_client, seed=...)` forwards every call to the real client (which talks HTTP
to the emulator), except that it can:

- refuse the next N calls of an operation with a throttling `ClientError` (nothing is sent);
- for `batch_write_item`, send only part of the request and return the rest as
  `UnprocessedItems`;
- for `put_records`, send only part and report the rest as failed entries with
  ErrorCode ProvisionedThroughputExceededException, in the original positions;
- for `write_records`, send only part and raise `RejectedRecordsException` naming the rest
  by their index in the original request (the service stores the others, so do we).

Which entries are held back is chosen by `random.Random(seed)`, so a test is repeatable.
Every request the wrapper received is kept in `requests[operation]`, so tests can assert
what was re-sent. Calls may come from several threads at once (a sink's pool of puts): the
wrapper's own bookkeeping is under a lock, the real calls are not.

Besides, for ANY operation of the client (every method botocore generates, and paginators
over them), whole calls can fail with one of `FAULT_KINDS`:

- "throttle": the service's throttling error (HTTP 400), nothing sent;
- "5xx": `ServiceUnavailable` with HTTP 503, nothing sent;
- "refused": `EndpointConnectionError` (connection refused), nothing sent;
- "reset": `ConnectionClosedError` (connection reset before the answer), nothing sent;
- "timeout": `ReadTimeoutError` AFTER the real call was made: the request took effect and its
  answer is lost, the hardest case for conditional writes.

`burst(kind, every=N, length=M)` fails M calls in a row out of every N calls of each operation
(deterministic, by call count); `outage(operation, kind, seconds)` fails every call of one
operation for a while (with `when=`, only the calls whose request it accepts: one table's
Query, say). `faulted[operation]` counts the calls failed that way, and
`faulted_threads[operation]` names the threads that made them (who waited on the fault).
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

FAULT_KINDS = ("throttle", "5xx", "refused", "reset", "timeout")

THROTTLE_CODE = {
    "batch_write_item": "ProvisionedThroughputExceededException",
    "put_item": "ProvisionedThroughputExceededException",
    "put_records": "ProvisionedThroughputExceededException",
    "write_records": "ThrottlingException",
}

_OPERATION_NAME = {
    "batch_write_item": "BatchWriteItem",
    "put_item": "PutItem",
    "put_records": "PutRecords",
    "write_records": "WriteRecords",
}


def client_error(operation: str, code: str, message: str, **extra: Any) -> ClientError:
    """A ClientError shaped like the one botocore raises for an error response."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
        **extra,
    }
    return ClientError(response, _OPERATION_NAME.get(operation, operation))  # type: ignore[arg-type]


def fault_error(operation: str, kind: str) -> Exception:
    """The exception botocore raises for a fault of `kind` on `operation`."""
    url = "http://127.0.0.1/(injected)"
    if kind == "throttle":
        code = THROTTLE_CODE.get(operation, "ThrottlingException")
        return client_error(operation, code, "Rate exceeded (injected)")
    if kind == "5xx":
        error = client_error(operation, "ServiceUnavailable", "Service unavailable (injected)")
        error.response["ResponseMetadata"]["HTTPStatusCode"] = 503
        return error
    if kind == "refused":
        return EndpointConnectionError(endpoint_url=url)
    if kind == "reset":
        return ConnectionClosedError(endpoint_url=url)
    if kind == "timeout":
        return ReadTimeoutError(endpoint_url=url)
    raise ValueError(f"unknown fault kind {kind!r}")


class _Burst:
    def __init__(self, kind: str, every: int, length: int, operations: set[str] | None) -> None:
        self.kind, self.every, self.length, self.operations = kind, every, length, operations


class _Outage:
    def __init__(
        self, kind: str, until_s: float, when: Callable[[dict[str, Any]], bool] | None
    ) -> None:
        self.kind, self.until_s, self.when = kind, until_s, when


class _Paginator:
    """`get_paginator("query" | "scan")` over the wrapper's own method, so pages fault too."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


class FaultyClient:
    """Wraps a real boto3 client; see the module docstring."""

    def __init__(self, client: Any, *, seed: int = 0, hold_back_fraction: float = 0.5) -> None:
        self._client = client
        self._rng = random.Random(seed)
        self._fraction = hold_back_fraction
        self._throttles: dict[str, int] = defaultdict(int)
        self._partials: dict[str, int] = defaultdict(int)
        self.requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        """Every request received, per operation, deep-copied, faulted or not."""
        self.held_back: dict[str, list[Any]] = defaultdict(list)
        """Entries returned as failed (not sent to the real client), per operation."""
        self.throttled: dict[str, int] = defaultdict(int)
        """Calls refused with a throttling error, per operation."""
        self.log: list[tuple[str, str, list[Any]]] = []
        """Every call in order: (operation, "sent" | "throttled" | "partial", entries held back)."""
        self._bursts: list[_Burst] = []
        self._outages: dict[str, _Outage] = {}
        self._monotonic: Callable[[], float] = time.monotonic
        self._lock = threading.RLock()
        self.calls: dict[str, int] = defaultdict(int)
        """Calls per operation, faulted or not."""
        self.faulted: dict[str, int] = defaultdict(int)
        """Calls per operation failed by `burst` or `outage`."""
        self.faulted_threads: dict[str, set[str]] = defaultdict(set)
        """Names of the threads whose calls were failed by `burst` or `outage`, per operation."""

    # -- arming faults ------------------------------------------------------------------

    def throttle(self, operation: str, calls: int) -> FaultyClient:
        """Refuse the next `calls` calls of `operation` with a throttling error."""
        self._throttles[operation] += calls
        return self

    def partial(self, operation: str, calls: int) -> FaultyClient:
        """Make the next `calls` calls of `operation` succeed only in part."""
        self._partials[operation] += calls
        return self

    def heal(self, operation: str) -> FaultyClient:
        """Disarm every fault still armed for `operation` (the store recovered)."""
        self._throttles[operation] = 0
        self._partials[operation] = 0
        self._outages.pop(operation, None)
        return self

    def burst(
        self, kind: str, *, every: int, length: int, operations: Iterable[str] | None = None
    ) -> FaultyClient:
        """Of every `every` calls of each operation (or of `operations`), fail `length` in a
        row with `kind`: calls number 1 .. length of each round (the first call of a round
        goes through)."""
        if not 0 < length < every:
            raise ValueError("a burst needs 0 < length < every")
        fault_error("operation", kind)  # an unknown kind fails here, not mid-test
        chosen = set(operations) if operations is not None else None
        self._bursts.append(_Burst(kind, every, length, chosen))
        return self

    def outage(
        self,
        operation: str,
        kind: str,
        seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> FaultyClient:
        """Fail every call of `operation` with `kind` for the next `seconds` (only those
        whose request `when` accepts, if given)."""
        fault_error(operation, kind)
        self._monotonic = monotonic
        self._outages[operation] = _Outage(kind, monotonic() + seconds, when)
        return self

    def outage_over(self, operation: str) -> bool:
        outage = self._outages.get(operation)
        return outage is None or self._monotonic() >= outage.until_s

    # -- forwarding ---------------------------------------------------------------------

    def _fault_for(self, operation: str, request: dict[str, Any]) -> str | None:
        with self._lock:
            return self._fault_for_locked(operation, request)

    def _fault_for_locked(self, operation: str, request: dict[str, Any]) -> str | None:
        number = self.calls[operation]
        self.calls[operation] += 1
        outage = self._outages.get(operation)
        if (
            outage is not None
            and self._monotonic() < outage.until_s
            and (outage.when is None or outage.when(request))
        ):
            return outage.kind
        for burst in self._bursts:
            if burst.operations is not None and operation not in burst.operations:
                continue
            if 1 <= number % burst.every <= burst.length:
                return burst.kind
        return None

    def _run(self, operation: str, call: Callable[[], Any], request: dict[str, Any]) -> Any:
        kind = self._fault_for(operation, request)
        if kind is None:
            return call()
        with self._lock:
            self.faulted[operation] += 1
            self.faulted_threads[operation].add(threading.current_thread().name)
        if kind == "timeout":
            call()  # it took effect; the answer is lost
        raise fault_error(operation, kind)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name in self._client.meta.method_to_api_mapping:

            def call(**kwargs: Any) -> Any:
                return self._run(name, lambda: attr(**kwargs), kwargs)

            return call
        return attr

    def get_paginator(self, operation: str) -> _Paginator:
        if operation not in ("query", "scan"):
            raise ValueError(f"FaultyClient paginates query and scan only, not {operation}")
        return _Paginator(getattr(self, operation))

    def _before(self, operation: str, kwargs: dict[str, Any]) -> bool:
        """Record the request; raise a throttle if armed; say whether to fail it in part."""
        with self._lock:
            return self._before_locked(operation, kwargs)

    def _before_locked(self, operation: str, kwargs: dict[str, Any]) -> bool:
        self.requests[operation].append(copy.deepcopy(kwargs))
        if self._throttles[operation] > 0:
            self._throttles[operation] -= 1
            self.throttled[operation] += 1
            self.log.append((operation, "throttled", []))
            raise client_error(operation, THROTTLE_CODE[operation], "Rate exceeded (injected)")
        if self._partials[operation] > 0:
            self._partials[operation] -= 1
            self.log.append((operation, "partial", []))
            return True
        self.log.append((operation, "sent", []))
        return False

    def _split(self, count: int) -> set[int]:
        """Indexes to hold back: at least one, at most all, chosen by the seeded random."""
        held = max(1, min(count, round(count * self._fraction)))
        return set(self._rng.sample(range(count), held))

    def _held(self, entries: list[Any]) -> None:
        operation, _outcome, held = self.log[-1]
        held.extend(entries)
        self.held_back[operation].extend(entries)

    def put_item(self, **kwargs: Any) -> Any:
        return self._run("put_item", lambda: self._put_item(kwargs), kwargs)

    def _put_item(self, kwargs: dict[str, Any]) -> Any:
        self._before("put_item", kwargs)
        return self._client.put_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        return self._run("batch_write_item", lambda: self._batch_write_item(kwargs), kwargs)

    def _batch_write_item(self, kwargs: dict[str, Any]) -> Any:
        if not self._before("batch_write_item", kwargs):
            return self._client.batch_write_item(**kwargs)
        send: dict[str, list[Any]] = {}
        unprocessed: dict[str, list[Any]] = {}
        for table, entries in kwargs["RequestItems"].items():
            held = self._split(len(entries))
            kept = [e for i, e in enumerate(entries) if i not in held]
            back = [e for i, e in enumerate(entries) if i in held]
            if kept:
                send[table] = kept
            if back:
                unprocessed[table] = back
                self._held(copy.deepcopy(back))
        response: dict[str, Any] = {"UnprocessedItems": {}}
        if send:
            response = self._client.batch_write_item(**{**kwargs, "RequestItems": send})
        merged = dict(response.get("UnprocessedItems", {}))
        for table, back in unprocessed.items():
            merged[table] = list(merged.get(table, [])) + back
        return {**response, "UnprocessedItems": merged}

    def put_records(self, **kwargs: Any) -> Any:
        return self._run("put_records", lambda: self._put_records(kwargs), kwargs)

    def _put_records(self, kwargs: dict[str, Any]) -> Any:
        if not self._before("put_records", kwargs):
            return self._client.put_records(**kwargs)
        entries = kwargs["Records"]
        held = self._split(len(entries))
        kept = [e for i, e in enumerate(entries) if i not in held]
        self._held([copy.deepcopy(e) for i, e in enumerate(entries) if i in held])
        sent = iter(
            self._client.put_records(**{**kwargs, "Records": kept})["Records"] if kept else []
        )
        results: list[dict[str, Any]] = []
        for i in range(len(entries)):
            if i in held:
                results.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard (injected)",
                    }
                )
            else:
                results.append(next(sent))
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}

    def write_records(self, **kwargs: Any) -> Any:
        return self._run("write_records", lambda: self._write_records(kwargs), kwargs)

    def _write_records(self, kwargs: dict[str, Any]) -> Any:
        if not self._before("write_records", kwargs):
            return self._client.write_records(**kwargs)
        entries = kwargs["Records"]
        held = self._split(len(entries))
        kept = [e for i, e in enumerate(entries) if i not in held]
        self._held([copy.deepcopy(e) for i, e in enumerate(entries) if i in held])
        if kept:
            self._client.write_records(**{**kwargs, "Records": kept})
        rejected = [
            {"RecordIndex": i, "Reason": "Record version conflict (injected)"} for i in sorted(held)
        ]
        raise client_error(
            "write_records",
            "RejectedRecordsException",
            "One or more records have been rejected (injected)",
            RejectedRecords=rejected,
        )
