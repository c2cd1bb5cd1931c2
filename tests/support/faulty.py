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
what was re-sent.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from typing import Any

from botocore.exceptions import ClientError

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
        return self

    # -- forwarding ---------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _before(self, operation: str, kwargs: dict[str, Any]) -> bool:
        """Record the request; raise a throttle if armed; say whether to fail it in part."""
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
        self._before("put_item", kwargs)
        return self._client.put_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
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
