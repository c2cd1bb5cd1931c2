"""The KCL MultiLangDaemon protocol: one JSON message per line, both directions.

The daemon writes to the processor's stdin:

    {"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}
    {"action":"processRecords","records":[{"data":"<base64>","partitionKey":"pk","sequenceNumber":"495...",
        "approximateArrivalTimestamp":1700000000000,"subSequenceNumber":0,"action":"record"}],
        "millisBehindLatest":0}
    {"action":"leaseLost"}  {"action":"shardEnded"}  {"action":"shutdownRequested"}
    {"action":"checkpoint","sequenceNumber":"495...","subSequenceNumber":0,"error":null}  (answer)

The processor answers every message with `{"action":"status","responseFor":"<action>"}` on
stdout, and may first ask for checkpoints with `{"action":"checkpoint","sequenceNumber":...,
"subSequenceNumber":...}` (a null sequence number means "the largest permitted one": the last
record delivered, or SHARD_END inside `shardEnded`). The daemon answers each checkpoint request
with a checkpoint message whose `error` is the simple class name of the Java exception, or null.

Anything else the processor prints on stdout breaks the protocol (the daemon skips lines it
cannot parse, but a processor waiting for an answer would hang), so logs go to stderr.

Sequence numbers are decimal strings in the protocol and ints here; `msgspec` turns the
strings into ints and the base64 `data` into bytes while decoding (`strict=False` allows the
string-to-int step).
"""

from __future__ import annotations

from typing import Final

import msgspec

from core.records import Position, Record

# The simple class names the daemon reports in a checkpoint answer's `error`.
SHUTDOWN_EXCEPTION: Final = "ShutdownException"
THROTTLING_EXCEPTION: Final = "ThrottlingException"
INVALID_STATE_EXCEPTION: Final = "InvalidStateException"
DEPENDENCY_EXCEPTION: Final = "KinesisClientLibDependencyException"


class KclRecord(msgspec.Struct, rename="camel", gc=False):
    """One record as the daemon sends it (KPL aggregates arrive de-aggregated)."""

    data: bytes
    partition_key: str
    sequence_number: int
    sub_sequence_number: int | None = 0
    approximate_arrival_timestamp: int | None = None


class Initialize(msgspec.Struct, tag_field="action", tag="initialize", rename="camel"):
    shard_id: str
    # A sentinel (TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END) or a decimal sequence number.
    sequence_number: str | None = None
    sub_sequence_number: int | None = None


class ProcessRecords(msgspec.Struct, tag_field="action", tag="processRecords", rename="camel"):
    records: list[KclRecord]
    millis_behind_latest: int | None = None


class LeaseLost(msgspec.Struct, tag_field="action", tag="leaseLost"):
    pass


class ShardEnded(msgspec.Struct, tag_field="action", tag="shardEnded"):
    pass


class ShutdownRequested(msgspec.Struct, tag_field="action", tag="shutdownRequested"):
    pass


class Shutdown(msgspec.Struct, tag_field="action", tag="shutdown"):
    """The KCL 1.x shutdown message (reason TERMINATE or ZOMBIE); current daemons do not send
    it, but a processor must still answer it rather than hang the daemon."""

    reason: str | None = None


class CheckpointResult(msgspec.Struct, tag_field="action", tag="checkpoint", rename="camel"):
    """The daemon's answer to a checkpoint request; `error` is None on success."""

    sequence_number: str | None = None
    sub_sequence_number: int | None = None
    error: str | None = None


InboundMessage = (
    Initialize
    | ProcessRecords
    | LeaseLost
    | ShardEnded
    | ShutdownRequested
    | Shutdown
    | CheckpointResult
)


class Status(msgspec.Struct, tag_field="action", tag="status", rename="camel"):
    response_for: str


class CheckpointRequest(msgspec.Struct, tag_field="action", tag="checkpoint", rename="camel"):
    # A decimal string, as the daemon's Java side expects; None = the largest permitted.
    sequence_number: str | None
    sub_sequence_number: int | None


ACTION_OF: Final[dict[type[InboundMessage], str]] = {
    Initialize: "initialize",
    ProcessRecords: "processRecords",
    LeaseLost: "leaseLost",
    ShardEnded: "shardEnded",
    ShutdownRequested: "shutdownRequested",
    Shutdown: "shutdown",
    CheckpointResult: "checkpoint",
}

_decoder: Final[msgspec.json.Decoder[InboundMessage]] = msgspec.json.Decoder(
    InboundMessage, strict=False
)
_encoder: Final = msgspec.json.Encoder()


class ProtocolError(ValueError):
    """A line from the daemon is not a protocol message."""


def decode_message(line: bytes) -> InboundMessage:
    """One line from the daemon -> a message. Raises `ProtocolError` on anything else."""
    try:
        return _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a MultiLangDaemon message: {exc}: {line[:200]!r}") from exc


def to_records(shard_id: str, message: ProcessRecords) -> list[Record]:
    """The protocol's records as luxflow `Record`s of `shard_id`, in delivery order."""
    return [
        Record(
            shard_id,
            r.sequence_number,
            r.sub_sequence_number or 0,
            r.partition_key,
            r.data,
            r.approximate_arrival_timestamp or 0,
        )
        for r in message.records
    ]


def encode_status(action: str) -> bytes:
    """The status line answering `action`, newline included."""
    return _encoder.encode(Status(action)) + b"\n"


def encode_checkpoint(position: Position | None) -> bytes:
    """A checkpoint request line; `None` asks for the largest permitted position (SHARD_END
    inside `shardEnded`). Newline included."""
    if position is None:
        request = CheckpointRequest(None, None)
    else:
        request = CheckpointRequest(str(position.sequence_number), position.sub_sequence_number)
    return _encoder.encode(request) + b"\n"
