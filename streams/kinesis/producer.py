"""Writes records to Kinesis with PutRecords, retrying exactly the entries that failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SourceError
from core.retry import Backoff, is_retryable

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024


@dataclass
class ProducerCounters:
    records: int = 0
    calls: int = 0
    retried_records: int = 0
    throttled_calls: int = 0


class Producer:
    """Sends (partition_key, data) pairs to a stream, 500 records (or 5 MiB) per call.

    Contract: `send()` returns only when every record was accepted by Kinesis. Entries that a
    PutRecords call reports as failed (`ErrorCode` set) are sent again, and only they, after a
    capped exponential backoff; a whole call that failed transiently (throttled, 5xx, connection
    refused or reset, timed out) is retried whole. Raises `SourceError`
    when the backoff's attempts run out, naming how many records were not accepted.
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        *,
        backoff: Backoff | None = None,
        records_per_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._backoff = backoff or Backoff()
        self._records_per_s = records_per_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._started_s: float | None = None
        self.counters = ProducerCounters()

    def send(self, records: Iterable[tuple[str, bytes]]) -> None:
        batch: list[dict[str, Any]] = []
        size = 0
        for partition_key, data in records:
            entry_size = len(data) + len(partition_key.encode())
            if batch and (
                len(batch) == MAX_RECORDS_PER_CALL or size + entry_size > MAX_BYTES_PER_CALL
            ):
                self._put_all(batch)
                batch, size = [], 0
            batch.append({"PartitionKey": partition_key, "Data": data})
            size += entry_size
        if batch:
            self._put_all(batch)

    def _pace(self, count: int) -> None:
        if self._records_per_s is None:
            return
        now = self._monotonic()
        if self._started_s is None:
            self._started_s = now
        due_s = self._started_s + (self.counters.records + count) / self._records_per_s
        if due_s > now:
            self._sleep(due_s - now)

    def _put_all(self, entries: list[dict[str, Any]]) -> None:
        self._pace(len(entries))
        pending = entries
        attempt = 0
        while pending:
            self.counters.calls += 1
            try:
                response = self._client.put_records(StreamName=self._stream, Records=pending)
            except (ClientError, BotoCoreError, OSError) as exc:
                if not is_retryable(exc):
                    raise SourceError(f"PutRecords to {self._stream} failed: {exc}") from exc
                self.counters.throttled_calls += 1
                failed = pending
            else:
                if not response.get("FailedRecordCount"):
                    self.counters.records += len(pending)
                    return
                failed = [
                    entry
                    for entry, result in zip(pending, response["Records"], strict=True)
                    if result.get("ErrorCode")
                ]
                self.counters.records += len(pending) - len(failed)
                self.counters.retried_records += len(failed)
            if attempt + 1 >= self._backoff.max_attempts:
                raise SourceError(
                    f"{len(failed)} records not accepted by {self._stream} after {attempt} retries"
                )
            self._backoff.pause(attempt)
            attempt += 1
            pending = failed
