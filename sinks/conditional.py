"""Conditional PutItems ("store this item unless the stored one is as new or newer"), sent a
few at a time on a small pool of threads: the command sink's current-state writes.

Why a pool: a fleet's first round of readings, and every replay or restart from scratch,
makes one current-state put per asset, and the shard's next batch (a fault among its records)
waits until its flush returns. One put after another, 1,000 of them held a shard for 5-9 s on
moto; `concurrency` puts in flight divide that wait by up to `concurrency` wherever the store's
answer time, not the caller's CPU, sets the pace (DynamoDB: a few ms per put).

Contract of `ConditionalPuts.put_all(writes)`:

- every write is attempted, each on its own: each put retried by itself (capped exponential
  backoff with full jitter, `core.retry`) while its error is retryable, so a throttle or a
  dropped connection re-sends that put and no other, and a put that succeeded is never sent
  again;
- it returns only once every put has ended (none is in flight after it: the caller may then
  checkpoint, or drop its buffers), with one `PutOutcome` per write, in the order given;
- a failed condition is an outcome, not an error: the stored item is as new or newer, and is
  returned (`ReturnValuesOnConditionCheckFailure`, no extra write units);
- nothing is counted or reported from the pool's threads: the caller applies the outcomes (its
  counters, its callbacks) on its own thread.

The client is shared by the pool's threads: botocore's clients and `lighting.aws`'s are safe for
that (each keeps a pool of connections, 64 by default).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.retry import Backoff, error_code, is_throttle, retry_call
from sinks.attrvalues import AttributeMap, to_attribute_value

PUT_CONCURRENCY = 8
"""Puts in flight per sink. At DynamoDB's few ms per put, 8 store a shard's design fill of
about 2,100 first current states in about 1.5 s instead of 10 s; more would mostly add
threads (one set per shard in the local runner) and throttles on a cold partition."""


class ConditionalPut:
    """One item to put if it is newer than the stored one by `field` (its value `value`)."""

    __slots__ = ("field", "item", "value", "values")

    def __init__(
        self, field: str, value: Any, item: AttributeMap, values: Mapping[str, object]
    ) -> None:
        self.field = field
        self.value = value
        self.item = item
        self.values = values


@dataclass
class PutOutcome:
    """How one conditional put ended. `applied`: stored now. `stale`: the condition failed,
    a stored item is as new or newer (`stored`: it, as DynamoDB returned it). Otherwise
    `error`: the last error of the put (retries exhausted, or not retryable)."""

    write: ConditionalPut
    applied: bool = False
    stale: bool = False
    stored: AttributeMap | None = None
    error: BaseException | None = None
    calls: int = 0
    retries: int = 0
    throttles: int = 0
    request_us: int = 0


def newer_than_condition(key_field: str, field: str) -> tuple[str, dict[str, str], str]:
    """The condition "no item stored yet, or the stored one is older than the incoming one".

    Returns (ConditionExpression, ExpressionAttributeNames, name of the incoming value).
    """
    not_stored = "attribute_not_exists(#key)"
    stored_is_older = "#field < :incoming"
    return f"{not_stored} OR {stored_is_older}", {"#key": key_field, "#field": field}, ":incoming"


class ConditionalPuts:
    """Conditional puts to one table, `concurrency` at a time (1: on the caller's thread, one
    after another); the contract is in the module docstring. The pool's threads start on
    first use and end with the interpreter once idle."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        key_field: str,
        backoff: Backoff,
        concurrency: int = PUT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self._table_name = table_name
        self._key_field = key_field
        self._backoff = backoff
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def put_all(self, writes: Sequence[ConditionalPut]) -> list[PutOutcome]:
        if self._concurrency == 1 or len(writes) <= 1:
            return [self._put(write) for write in writes]
        pool = self._started_pool()
        futures: list[Future[PutOutcome]] = [pool.submit(self._put, write) for write in writes]
        outcomes = []
        for write, future in zip(writes, futures, strict=True):
            try:
                outcomes.append(future.result())
            except Exception as exc:  # not a store's answer (a bug): the put counts as failed
                outcomes.append(PutOutcome(write, error=exc))
        return outcomes

    def _started_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix=f"put {self._table_name}"
                )
            return self._pool

    def _put(self, write: ConditionalPut) -> PutOutcome:
        """One put with its retries; runs on a pool thread and touches nothing shared but the
        client."""
        outcome = PutOutcome(write)
        condition, names, incoming = newer_than_condition(self._key_field, write.field)

        def put() -> None:
            outcome.calls += 1
            started_ns = time.monotonic_ns()
            try:
                self._client.put_item(
                    TableName=self._table_name,
                    Item=write.item,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={incoming: to_attribute_value(write.value)},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                outcome.stale = True
                outcome.stored = exc.response.get("Item", {})  # type: ignore[assignment]
            else:
                outcome.applied = True
            finally:
                outcome.request_us += (time.monotonic_ns() - started_ns) // 1000

        def count_retry(exc: BaseException) -> None:
            outcome.retries += 1
            outcome.throttles += is_throttle(exc)

        try:
            retry_call(put, self._backoff, on_retry=count_retry)
        except Exception as exc:  # the caller decides: reject, or keep it buffered and raise
            outcome.error = exc
        return outcome
