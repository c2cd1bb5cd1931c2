"""KPL de-aggregation: one Kinesis record holding many user records, as the KCL unpacks it.

The Kinesis Producer Library packs user records into one Kinesis record:

    F3 89 9A C2 | AggregatedRecord (protobuf) | MD5 of the protobuf bytes (16 bytes)

    message AggregatedRecord {
      repeated string partition_key_table = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records = 3;
    }
    message Record {
      required uint64 partition_key_index = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes data = 3;
      repeated Tag tags = 4;          // skipped
    }

User record `i` of the aggregate gets sub-sequence number `i`. A record without the magic
bytes, with a wrong MD5, or whose protobuf does not parse is a plain record (the KCL does the
same), so a producer's bytes that happen to start with the magic are not lost. So is one that
no KPL writes: without user records (it would vanish without a dead letter or a count), or
with a partition key Kinesis would refuse (empty or over `MAX_PARTITION_KEY_CHARS`: a
record's partition key is kept with every table key it writes, and in its snapshots).

The protobuf reader is the few lines these three fields need (a varint and length-delimited
parser), rather than a dependency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Final

MAGIC: Final = b"\xf3\x89\x9a\xc2"
_DIGEST_BYTES: Final = 16
MAX_PARTITION_KEY_CHARS: Final = 256
"""The longest partition key Kinesis and the KPL accept (Unicode characters)."""

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class _MalformedError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _MalformedError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _MalformedError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == _BYTES:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _MalformedError("length past the end")
            yield number, buf[pos : pos + length]
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise _MalformedError("fixed field past the end")
            yield number, buf[pos : pos + size]
            pos += size
        else:
            raise _MalformedError(f"unsupported wire type {wire}")


def _user_record(buf: bytes) -> tuple[int, bytes]:
    pk_index: int | None = None
    data: bytes | None = None
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, int):
            pk_index = value
        elif number == 3 and isinstance(value, bytes):
            data = value
    if pk_index is None or data is None:
        raise _MalformedError("a user record needs partition_key_index and data")
    return pk_index, data


def deaggregate(data: bytes) -> list[tuple[str, bytes]] | None:
    """The (partition key, data) user records of a KPL aggregate, in order (at least one);
    None when `data` is not a well-formed aggregate (treat it as one plain record)."""
    if len(data) < len(MAGIC) + _DIGEST_BYTES or not data.startswith(MAGIC):
        return None
    body = data[len(MAGIC) : -_DIGEST_BYTES]
    if hashlib.md5(body).digest() != data[-_DIGEST_BYTES:]:
        return None
    try:
        keys: list[str] = []
        records: list[tuple[int, bytes]] = []
        for number, value in _fields(body):
            if number == 1 and isinstance(value, bytes):
                key = value.decode()
                if not 1 <= len(key) <= MAX_PARTITION_KEY_CHARS:
                    raise _MalformedError("a partition key Kinesis would refuse")
                keys.append(key)
            elif number == 3 and isinstance(value, bytes):
                records.append(_user_record(value))
        if not records:
            return None
        return [(keys[index], payload) for index, payload in records]
    except (_MalformedError, UnicodeDecodeError, IndexError):
        return None
