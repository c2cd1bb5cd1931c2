"""BatchWriteItem with exact partial-failure retry, shared by every DynamoDB-backed sink.

A BatchWriteItem call can succeed for some requests and hand the rest back as
`UnprocessedItems`. Only those are re-sent, after a backoff pause; a call that fails as a
whole (throttled, 5xx, connection) is repeated as it was. One batch is finished before the
next one starts, so a `SinkError` leaves the current and later batches unwritten.

A `ValidationException` fails the whole batch for one bad item (key too long, item over
400 KB). With a `reject` callback the batch is split in halves until each bad item is alone;
the good ones are written and each bad one goes to `reject(item, reason)` (the item as plain
values), reason `dynamodb_validation: <message>`. Without one it is a `SinkError`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SinkError
from core.retry import Backoff, describe_error, error_code, is_retryable
from sinks.attrvalues import AttributeMap, from_item
from sinks.base import SinkCounters
from sinks.rejects import Reject, bounded_reason

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_BATCH_ITEMS = 25
"""BatchWriteItem accepts at most 25 put/delete requests per call."""

DYNAMODB_VALIDATION = "dynamodb_validation"
"""Reason code of an item DynamoDB refuses as invalid; retrying it can never succeed."""


def is_validation_error(exc: BaseException) -> bool:
    """True for DynamoDB's "this request is invalid" (no retry can fix it)."""
    return error_code(exc) == "ValidationException"


def rejection_reason(exc: BaseException) -> str:
    """`dynamodb_validation: <message>`, bounded."""
    return bounded_reason(DYNAMODB_VALIDATION, describe_error(exc))


class BatchWriter:
    """Writes items to one table with BatchWriteItem, 25 at a time."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        backoff: Backoff,
        counters: SinkCounters,
        reject: Reject[Mapping[str, object]] | None = None,
    ) -> None:
        self._client = client
        self._table_name = table_name
        self._backoff = backoff
        self._counters = counters
        self._reject = reject

    def put_batch(self, items: Sequence[AttributeMap]) -> None:
        """Durably put at most 25 items with distinct keys (or hand the invalid ones to
        `reject`), or raise `SinkError`.

        Retries whole-call failures and exactly the unprocessed subset, sharing one attempt
        budget (`backoff.max_attempts` calls in all). A validation error splits the pending
        items in halves, each half with a fresh budget (see the module docstring).
        """
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        pending: list[Any] = [{"PutRequest": {"Item": item}} for item in items]
        retry = 0
        while pending:
            self._counters.calls += 1
            try:
                with self._counters.timed():
                    response = self._client.batch_write_item(
                        RequestItems={self._table_name: pending}
                    )
            except (ClientError, BotoCoreError) as exc:
                if self._reject is not None and is_validation_error(exc):
                    self._isolate([request["PutRequest"]["Item"] for request in pending], exc)
                    return
                if not is_retryable(exc) or retry + 1 >= self._backoff.max_attempts:
                    raise SinkError(
                        f"BatchWriteItem to {self._table_name} failed after {retry + 1} "
                        f"call(s); {len(pending)} item(s) not written: {describe_error(exc)}"
                    ) from exc
                self._counters.count_retry(exc)
            else:
                unprocessed = list(response.get("UnprocessedItems", {}).get(self._table_name, []))
                self._counters.items_written += len(pending) - len(unprocessed)
                if not unprocessed:
                    return
                self._counters.unprocessed += len(unprocessed)
                pending = unprocessed
                if retry + 1 >= self._backoff.max_attempts:
                    raise SinkError(
                        f"BatchWriteItem to {self._table_name}: {len(pending)} item(s) still "
                        f"unprocessed after {retry + 1} call(s)"
                    )
                self._counters.retries += 1
            self._backoff.pause(retry)
            retry += 1

    def _isolate(self, items: list[AttributeMap], exc: BaseException) -> None:
        """Write the good items of a batch refused as invalid; reject the bad ones."""
        assert self._reject is not None
        if len(items) == 1:
            self._counters.rejected += 1
            self._reject(from_item(items[0]), rejection_reason(exc))
            return
        self._counters.splits += 1
        half = len(items) // 2
        self.put_batch(items[:half])
        self.put_batch(items[half:])


class KeyedBuffer:
    """Items waiting to be written, one per key; a later write of a key replaces the earlier.

    BatchWriteItem rejects two requests for one key in a call, and last-write-wins is what
    sequential puts would have stored anyway.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, AttributeMap] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable, item: AttributeMap) -> None:
        self._items[key] = item

    def clear(self) -> None:
        self._items.clear()

    def write_batch(self, writer: BatchWriter) -> None:
        """Write the oldest (up to) 25 items; they leave the buffer only once all are stored."""
        keys = []
        for key in self._items:
            keys.append(key)
            if len(keys) == MAX_BATCH_ITEMS:
                break
        writer.put_batch([self._items[key] for key in keys])
        for key in keys:
            del self._items[key]

    def write_all(self, writer: BatchWriter) -> None:
        """Write everything; on `SinkError` the unwritten items stay buffered."""
        while self._items:
            self.write_batch(writer)
