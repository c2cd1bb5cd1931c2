"""What a record source hands to a shard engine, and positions in a shard."""

from __future__ import annotations

from typing import Final

import msgspec

# KCL lease-table sentinels for `checkpoint` (stored as strings in the lease table).
TRIM_HORIZON: Final = "TRIM_HORIZON"
LATEST: Final = "LATEST"
AT_TIMESTAMP: Final = "AT_TIMESTAMP"
SHARD_END: Final = "SHARD_END"
SENTINELS: Final = frozenset({TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END})


class Record(msgspec.Struct, frozen=True, gc=False):
    """One Kinesis record (one user record when KPL aggregation was used).

    Sequence numbers are big integers and compared as integers, never as strings.
    `sub_sequence_number` is 0 for records that were not KPL-aggregated.
    """

    shard_id: str
    sequence_number: int
    sub_sequence_number: int
    partition_key: str
    data: bytes
    arrival_ms: int

    @property
    def position(self) -> Position:
        return Position(self.sequence_number, self.sub_sequence_number)


class Position(msgspec.Struct, frozen=True, order=True, array_like=True):
    """A point in a shard: (sequence number, sub-sequence number), ordered as integers."""

    sequence_number: int
    sub_sequence_number: int = 0

    def __str__(self) -> str:
        return f"{self.sequence_number}/{self.sub_sequence_number}"


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """Something that could not be processed, kept with its reason and original bytes.

    `origin` says where it was rejected: "decode" (bad bytes or invalid telemetry), "late"
    (beyond the window grace), or a sink name such as "timestream" (rejected by the store).
    The identity is (shard_id, sequence_number, sub_sequence_number, origin, detail_key), so
    writing the same dead letter twice stores it once.
    """

    shard_id: str
    sequence_number: int
    sub_sequence_number: int
    partition_key: str
    origin: str
    reason: str
    data: bytes
    arrival_ms: int
    detail_key: str = ""

    @classmethod
    def of(cls, record: Record, origin: str, reason: str) -> DeadLetter:
        return cls(
            record.shard_id,
            record.sequence_number,
            record.sub_sequence_number,
            record.partition_key,
            origin,
            reason,
            record.data,
            record.arrival_ms,
        )


class LeaseFence(msgspec.Struct, frozen=True):
    """Who holds a shard's lease, for writes that only the current owner may make.

    `table` is the lease table, `shard_id` its `leaseKey`, `owner` the `leaseOwner` and
    `counter` the `leaseCounter` seen when the fence was taken. A fenced write (a state
    snapshot, a checkpoint) is conditional on the lease item: `leaseOwner = owner AND
    leaseCounter >= counter`. The owner's own renewals raise the counter while a checkpoint
    runs (renewal is independent of processing), so the counter is a lower bound; any other
    owner fails the first part. A former owner that stalled therefore cannot write.
    """

    table: str
    shard_id: str
    owner: str
    counter: int
