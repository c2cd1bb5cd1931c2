"""The lost region's tail, read from the survivor's replica of its raw-record archive.

A region's raw records are archived (one line per record, arrival time, partition key, shard
and sequence number kept) and replicated to the other region's bucket within S3 Replication
Time Control's 15 minutes. After a failover, the survivor puts the moved sites' records from
its replica into its own stream, so that what the replica holds is processed again without
any device resending it. Which records: those whose partition key is a moved site and whose
reading time is at or after `from_ts_ms`. The start matters: every window the lost region
could still have had open (an hour and the window grace before the loss) must be rebuilt
whole, and a reading older than that would reopen an hour the lost region already reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.records import Record
from domain.telemetry import InvalidTelemetry, decode_reading
from streams.kinesis.archive_reader import BadLine, ShardOrder, list_objects, object_lines


@dataclass(frozen=True)
class Tail:
    """The moved sites' records to process again, each shard's in sequence order, as
    `(partition key, data)`; and the replica's lines that could not be used: not a record
    (`bad_lines`), behind an already given record of their shard (`out_of_order`), or a
    repeated delivery (`repeated`)."""

    records: list[tuple[str, bytes]]
    bad_lines: int
    out_of_order: int
    repeated: int


def reading_ts_ms(record: Record) -> int | None:
    """The reading time of an archived record, judged at its own arrival (as the worker judged
    it); None when the record is not a valid reading."""
    try:
        return decode_reading(record.data, record.arrival_ms).ts_ms
    except InvalidTelemetry:
        return None


def in_tail(record: Record, sites: set[str], from_ts_ms: int) -> bool:
    if record.partition_key not in sites:
        return False
    ts_ms = reading_ts_ms(record)
    # A record that is no reading goes through: the survivor dead-letters it with its bytes,
    # as the lost region would have, instead of it vanishing here.
    return ts_ms is None or ts_ms >= from_ts_ms


def tail_records(s3: Any, bucket: str, prefix: str, sites: set[str], from_ts_ms: int) -> Tail:
    """The records of `sites` under `prefix` of `bucket` from reading time `from_ts_ms` on,
    through the archive reader: each record once, each shard's in sequence order."""
    order = ShardOrder()
    records: list[tuple[str, bytes]] = []
    bad = out_of_order = 0
    for lines in _object_lines(s3, bucket, prefix):
        bad += sum(1 for line in lines if isinstance(line, BadLine))
        given, late = order.batches([line for line in lines if isinstance(line, Record)])
        out_of_order += len(late)
        for shard_id in sorted(given):
            records.extend(
                (r.partition_key, r.data) for r in given[shard_id] if in_tail(r, sites, from_ts_ms)
            )
    return Tail(records, bad, out_of_order, order.repeated)


def _object_lines(s3: Any, bucket: str, prefix: str) -> Iterator[list[Record | BadLine]]:
    for obj in list_objects(s3, bucket, prefix):
        body: bytes = s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read()
        yield list(object_lines(obj.key, body))
