"""Kinesis access for the local runner: shard listing, a polling `ShardReader` (which
de-aggregates KPL records, `streams.kinesis.kpl`), and a fast GetRecords response parser.

Every call runs under the retry policy (`core.retry`); what retries did not fix is raised as
`SourceError`, and the runner retries the shard's read later with backoff.

boto3 parses a GetRecords response generically at about 23 us per record, most of it in
timestamp parsing. We keep boto3 for signing, credentials, retries and endpoints, and parse the
body of a successful GetRecords response ourselves with msgspec (base64 straight to bytes,
sequence numbers straight to int), before botocore's parser sees it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SourceError
from core.records import AT_TIMESTAMP, LATEST, TRIM_HORIZON, Position, Record
from core.retry import Backoff, retry_call
from streams.kinesis.kpl import MAGIC, deaggregate
from streams.processor import Lineage


class _WireRecord(msgspec.Struct, rename="pascal"):
    sequence_number: str
    data: bytes
    partition_key: str
    approximate_arrival_timestamp: float = 0.0


class _WireGetRecords(msgspec.Struct, rename="pascal"):
    records: list[_WireRecord]
    next_shard_iterator: str | None = None
    millis_behind_latest: int | None = None
    child_shards: list[dict[str, Any]] | None = None


_decode_get_records = msgspec.json.Decoder(_WireGetRecords).decode
_FAST_KEY = "LuxflowBatch"


def _parse_get_records(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if response_dict.get("status_code", 500) >= 300:
        return
    body = response_dict["body"]
    customized_response_dict[_FAST_KEY] = _decode_get_records(body)
    response_dict["body"] = b"{}"  # nothing left for botocore's generic parser to do


def install_fast_get_records(client: Any) -> None:
    """Make `client.get_records` return our parsed batch under a private key. Idempotent."""
    client.meta.events.register_first(
        "before-parse.kinesis.GetRecords", _parse_get_records, unique_id="luxflow-fast-records"
    )


def partition_hash(partition_key: str) -> int:
    """Kinesis maps a partition key to a shard by the MD5 of its UTF-8 bytes, as a 128-bit int."""
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


def hash_range_lineage(parent_ids: tuple[str, ...], hash_range: tuple[int, int] | None) -> Lineage:
    """A shard's lineage: its parents, and of their state the partition keys whose hash falls
    in the shard's hash range, both ends inclusive (every key when the range is unknown)."""
    if hash_range is None:
        return Lineage(parent_ids)
    low, high = hash_range
    return Lineage(parent_ids, lambda pk: low <= partition_hash(pk) <= high)


class ShardInfo(msgspec.Struct, frozen=True):
    shard_id: str
    parent_ids: tuple[str, ...]
    starting_hash_key: int
    ending_hash_key: int
    ending_sequence_number: int | None
    """Set once the shard is closed (split or merged): its last sequence number."""

    @property
    def closed(self) -> bool:
        return self.ending_sequence_number is not None

    @property
    def hash_range(self) -> tuple[int, int]:
        return (self.starting_hash_key, self.ending_hash_key)


def _call(what: str, fn: Callable[..., Any], kwargs: dict[str, Any], backoff: Backoff) -> Any:
    """One Kinesis call under the retry policy; `SourceError` (from the last error) when
    retries did not fix it."""
    try:
        return retry_call(lambda: fn(**kwargs), backoff)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise SourceError(f"{what} failed: {exc!r}") from exc


def list_shards(client: Any, stream_name: str, backoff: Backoff | None = None) -> list[ShardInfo]:
    """Every shard of the stream, open and closed, with parents and hash ranges."""
    backoff = backoff or Backoff()
    shards: list[ShardInfo] = []
    kwargs: dict[str, Any] = {"StreamName": stream_name}
    while True:
        page = _call(f"ListShards of {stream_name}", client.list_shards, kwargs, backoff)
        for shard in page["Shards"]:
            parents = tuple(
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
            )
            hash_range = shard["HashKeyRange"]
            ending = shard["SequenceNumberRange"].get("EndingSequenceNumber")
            shards.append(
                ShardInfo(
                    shard_id=shard["ShardId"],
                    parent_ids=parents,
                    starting_hash_key=int(hash_range["StartingHashKey"]),
                    ending_hash_key=int(hash_range["EndingHashKey"]),
                    ending_sequence_number=int(ending) if ending is not None else None,
                )
            )
        token = page.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token}


class Batch(msgspec.Struct):
    records: list[Record]
    millis_behind_latest: int | None
    shard_ended: bool


class ShardReader:
    """Polls one shard with GetRecords, at most `max_calls_per_s` calls per second.

    Contract: `read()` returns the user records after the last ones it returned (possibly
    none), KPL aggregates unpacked, and `shard_ended=True` once, after the last record of a
    closed shard. It never returns a record twice and never skips one. Resuming at a position
    (a checkpoint, or after an expired iterator) reads AFTER its sequence number; inside a KPL
    aggregate (a sub-sequence number above 0, or the last record returned was a user record
    of an aggregate) it reads AT it and skips the user records at or below the position, so a
    KCL checkpoint inside an aggregate resumes at its next user record. (Reading AT for every
    resume made kinesalite lose records after a split; AFTER is what the KCL uses for plain
    records.) Not covered: a KCL checkpoint at sub-sequence 0 of an aggregate resumes after
    the whole aggregate.
    """

    def __init__(
        self,
        client: Any,
        stream_name: str,
        shard_id: str,
        start: Position | str,
        *,
        at_timestamp_ms: int | None = None,
        ending_sequence_number: Callable[[], int | None] = lambda: None,
        limit: int = 10_000,
        max_calls_per_s: float = 5.0,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        install_fast_get_records(client)
        self._client = client
        self._stream = stream_name
        self.shard_id = shard_id
        self._start = start
        self._at_timestamp_ms = at_timestamp_ms
        self._ending_sequence_number = ending_sequence_number
        self._limit = limit
        self._min_interval_s = 1.0 / max_calls_per_s
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._monotonic = monotonic
        self._iterator: str | None = None
        self._last: Position | None = start if isinstance(start, Position) else None
        self._skip_until: Position | None = None
        self._in_aggregate = False  # the last record returned came from a KPL aggregate
        self._last_was_aggregate = False
        self._last_call_s = 0.0
        self._ended = False

    def _new_iterator(self) -> str:
        kwargs: dict[str, Any] = {"StreamName": self._stream, "ShardId": self.shard_id}
        if self._last is not None and (self._last.sub_sequence_number or self._in_aggregate):
            # Inside a KPL aggregate: read it again and skip its user records up to _last.
            kwargs["ShardIteratorType"] = "AT_SEQUENCE_NUMBER"
            kwargs["StartingSequenceNumber"] = str(self._last.sequence_number)
            self._skip_until = self._last
        elif self._last is not None:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["StartingSequenceNumber"] = str(self._last.sequence_number)
        elif self._start == AT_TIMESTAMP:
            if self._at_timestamp_ms is None:
                raise SourceError("AT_TIMESTAMP needs a timestamp")
            kwargs["ShardIteratorType"] = AT_TIMESTAMP
            kwargs["Timestamp"] = self._at_timestamp_ms / 1000.0
        elif self._start in (TRIM_HORIZON, LATEST):
            kwargs["ShardIteratorType"] = self._start
        else:
            raise SourceError(f"cannot start shard {self.shard_id} at {self._start!r}")
        response = _call(
            f"GetShardIterator on {self.shard_id}",
            self._client.get_shard_iterator,
            kwargs,
            self._backoff,
        )
        iterator: str = response["ShardIterator"]
        return iterator

    def read(self) -> Batch:
        if self._ended:
            return Batch([], 0, shard_ended=False)
        wait_s = self._last_call_s + self._min_interval_s - self._monotonic()
        if wait_s > 0:
            self._sleep(wait_s)
        if self._iterator is None:
            self._iterator = self._new_iterator()
        self._last_call_s = self._monotonic()
        try:
            response = _call(
                f"GetRecords on {self.shard_id}",
                self._client.get_records,
                {"ShardIterator": self._iterator, "Limit": self._limit},
                self._backoff,
            )
        except SourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in (
                "ExpiredIteratorException",
                "InvalidArgumentException",
            ):
                self._iterator = None  # start again after the last record we returned
                return Batch([], None, shard_ended=False)
            raise
        wire: _WireGetRecords = response[_FAST_KEY]
        records = list(self._to_records(wire.records))
        if records:
            self._last = records[-1].position
            self._in_aggregate = self._last_was_aggregate
        self._iterator = wire.next_shard_iterator
        if self._iterator is None or self._read_past_end(bool(records), wire):
            self._ended = True
        return Batch(records, wire.millis_behind_latest, shard_ended=self._ended)

    def _read_past_end(self, got_records: bool, wire: _WireGetRecords) -> bool:
        """Kinesis ends a closed shard with a null NextShardIterator. Some emulators (moto)
        keep handing out iterators, so a closed shard also ends once we read its last
        sequence number, or read nothing more while caught up."""
        ending = self._ending_sequence_number()
        if ending is None:
            return False
        if self._last is not None and self._last.sequence_number >= ending:
            return True
        return not got_records and wire.millis_behind_latest == 0

    def _to_records(self, wire: Sequence[_WireRecord]) -> Iterator[Record]:
        shard_id = self.shard_id
        skip = self._skip_until
        self._last_was_aggregate = False
        for r in wire:
            sequence = int(r.sequence_number)
            arrival_ms = int(r.approximate_arrival_timestamp * 1000)
            data = r.data
            users = deaggregate(data) if data[:4] == MAGIC else None
            if users is None:
                if skip is not None and Position(sequence) <= skip:
                    continue
                skip = None
                self._last_was_aggregate = False
                yield Record(shard_id, sequence, 0, r.partition_key, data, arrival_ms)
                continue
            for sub, (partition_key, payload) in enumerate(users):
                if skip is not None and Position(sequence, sub) <= skip:
                    continue
                skip = None
                self._last_was_aggregate = True
                yield Record(shard_id, sequence, sub, partition_key, payload, arrival_ms)
        self._skip_until = skip
