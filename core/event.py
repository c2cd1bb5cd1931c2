"""`Event`: the context of the value an agent is processing (Faust's `stream.current_event`).

The engine builds one per record it feeds, before the agents see the value: it is set on
every agent's `Stream.current_event` and handed to the shard's tables (`ShardState.begin`),
which take the partition key of their writes and the event time of `relative_to_field` /
`relative_to_stream` from it. Nothing else carries record context: no thread-local, no
attribute set behind the agent's back.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from core.records import Record

T = TypeVar("T")


class Event(msgspec.Struct, Generic[T], frozen=True):
    """One decoded record: where it came from, when it arrived, and its value.

    `sequence_number` is a Kinesis sequence number, a big integer (compare as int).
    """

    shard_id: str
    sequence_number: int
    sub_sequence_number: int
    partition_key: str
    arrival_ms: int
    value: T

    @classmethod
    def of(cls, record: Record, value: T) -> Event[T]:
        """The event of `record` decoded as `value`."""
        return cls(
            record.shard_id,
            record.sequence_number,
            record.sub_sequence_number,
            record.partition_key,
            record.arrival_ms,
            value,
        )
