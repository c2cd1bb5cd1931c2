"""The MultiLangDaemon protocol codec, on the exact bytes the daemon writes and reads.

The inbound fixtures are lines captured from a KCL 3.1.3 MultiLangDaemon (Jackson output);
the 56-digit sequence number is the shape real Kinesis uses.
"""

from __future__ import annotations

import pytest

from core.records import Position, Record
from streams.kcl.protocol import (
    CheckpointResult,
    Initialize,
    LeaseLost,
    ProcessRecords,
    ProtocolError,
    ShardEnded,
    Shutdown,
    ShutdownRequested,
    decode_message,
    encode_checkpoint,
    encode_status,
    to_records,
)

SEQ = 49590338271490256608559692538361571095921575989136588898

INITIALIZE = (
    b'{"action":"initialize","shardId":"shardId-000000000003",'
    b'"sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}\n'
)
PROCESS_RECORDS = (
    b'{"action":"processRecords","records":['
    b'{"data":"cmVjLTI=","partitionKey":"pk2","sequenceNumber":"'
    + str(SEQ).encode()
    + b'","approximateArrivalTimestamp":1795825455376,"subSequenceNumber":0,"action":"record"},'
    b'{"data":"","partitionKey":"site-7","sequenceNumber":"'
    + str(SEQ + 1).encode()
    + b'","approximateArrivalTimestamp":1795825455377,"subSequenceNumber":3,"action":"record"}'
    b'],"millisBehindLatest":12}\n'
)


def test_initialize() -> None:
    message = decode_message(INITIALIZE)
    assert message == Initialize("shardId-000000000003", "TRIM_HORIZON", 0)


def test_initialize_at_a_sequence_number_keeps_it_as_text() -> None:
    line = (
        b'{"action":"initialize","shardId":"shardId-000000000000",'
        b'"sequenceNumber":"53","subSequenceNumber":null}'
    )
    assert decode_message(line) == Initialize("shardId-000000000000", "53", None)


def test_process_records_decodes_base64_and_big_sequence_numbers() -> None:
    message = decode_message(PROCESS_RECORDS)
    assert isinstance(message, ProcessRecords)
    assert message.millis_behind_latest == 12
    first, second = message.records
    assert first.data == b"rec-2"
    assert first.sequence_number == SEQ
    assert isinstance(first.sequence_number, int)
    assert second.data == b""
    assert second.sub_sequence_number == 3


def test_to_records_builds_luxflow_records_in_order() -> None:
    message = decode_message(PROCESS_RECORDS)
    assert isinstance(message, ProcessRecords)
    assert to_records("shardId-000000000003", message) == [
        Record("shardId-000000000003", SEQ, 0, "pk2", b"rec-2", 1795825455376),
        Record("shardId-000000000003", SEQ + 1, 3, "site-7", b"", 1795825455377),
    ]


def test_kpl_subsequence_numbers_order_within_one_sequence_number() -> None:
    line = (
        b'{"action":"processRecords","records":['
        b'{"data":"YQ==","partitionKey":"p","sequenceNumber":"7","subSequenceNumber":0},'
        b'{"data":"Yg==","partitionKey":"p","sequenceNumber":"7","subSequenceNumber":1}]}'
    )
    message = decode_message(line)
    assert isinstance(message, ProcessRecords)
    records = to_records("s", message)
    assert [r.position for r in records] == [Position(7, 0), Position(7, 1)]
    assert records[0].position < records[1].position


def test_missing_arrival_and_null_subsequence_default_to_zero() -> None:
    line = (
        b'{"action":"processRecords","records":[{"data":"eA==","partitionKey":"p",'
        b'"sequenceNumber":"9","subSequenceNumber":null,"approximateArrivalTimestamp":null}]}'
    )
    message = decode_message(line)
    assert isinstance(message, ProcessRecords)
    assert to_records("s", message) == [Record("s", 9, 0, "p", b"x", 0)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"action":"leaseLost"}', LeaseLost()),
        (b'{"action":"shardEnded"}', ShardEnded()),
        (b'{"action":"shutdownRequested"}', ShutdownRequested()),
        (b'{"action":"shutdown","reason":"TERMINATE"}', Shutdown("TERMINATE")),
    ],
)
def test_lifecycle_messages(line: bytes, expected: object) -> None:
    assert decode_message(line) == expected


def test_checkpoint_answers() -> None:
    ok = b'{"action":"checkpoint","sequenceNumber":"53","subSequenceNumber":0,"error":null}'
    assert decode_message(ok) == CheckpointResult("53", 0, None)
    shard_end = (
        b'{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null,"error":null}'
    )
    assert decode_message(shard_end) == CheckpointResult(None, None, None)
    failed = (
        b'{"action":"checkpoint","sequenceNumber":"53","subSequenceNumber":0,'
        b'"error":"ShutdownException"}'
    )
    assert decode_message(failed) == CheckpointResult("53", 0, "ShutdownException")


@pytest.mark.parametrize(
    "line",
    [
        b"hello from a print()\n",
        b'{"action":"dance"}',
        b'{"records":[]}',
        b'{"action":"processRecords","records":[{"data":"not base64!","partitionKey":"p",'
        b'"sequenceNumber":"1"}]}',
        b'{"action":"processRecords","records":[{"data":"","partitionKey":"p",'
        b'"sequenceNumber":"12abc"}]}',
    ],
)
def test_anything_else_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(line)


def test_status_bytes() -> None:
    assert encode_status("initialize") == b'{"action":"status","responseFor":"initialize"}\n'
    assert encode_status("processRecords") == (
        b'{"action":"status","responseFor":"processRecords"}\n'
    )


def test_checkpoint_request_bytes() -> None:
    assert encode_checkpoint(Position(SEQ, 2)) == (
        b'{"action":"checkpoint","sequenceNumber":"'
        + str(SEQ).encode()
        + b'","subSequenceNumber":2}\n'
    )
    assert encode_checkpoint(None) == (
        b'{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":null}\n'
    )
