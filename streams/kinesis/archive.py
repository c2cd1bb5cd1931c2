"""The raw-record archive's format: one JSON line per Kinesis record, in GZIP objects.

    {"arrival_ms":1764770400123,"data":"<base64>","pk":"site-1","seq":"4962...",
     "shard":"shardId-000000000001","sub":0,"v":1}

Written by the archive's Firehose transformation (infra/lambda/archive-format/index.py, which
mirrors `encode_line`; a unit test holds them equal) and read by `luxflow replay --archive`.
A line keeps what a replay needs beside the original bytes: the arrival time (what a replay's
TIME means), the shard and the sequence number (a shard's records are replayed in their order,
because the shard's event clock is shared by every site on it), the partition key. Sequence
numbers are strings in the line (they are over 2**64) and integers in a `Record`.

Objects are named as Firehose names them under the archive's prefix:

    <prefix><yyyy>/<MM>/<dd>/<HH>/<delivery-stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>.gz

so key order is delivery time order (`object_hour_ms` reads the hour, for `--from`/`--to`).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from typing import Final

import msgspec

from core.errors import SourceError
from core.records import Record

FORMAT_VERSION: Final = 1


class ArchiveFormatError(SourceError):
    """An archive line that is not a record of this format; `reason` is stable (no values in
    it), so the dead letters of one kind share it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Line(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    v: int
    shard: str
    seq: str
    sub: int
    pk: str
    arrival_ms: int
    data: str


_decode = msgspec.json.Decoder(_Line).decode
_encode = msgspec.json.Encoder(order="sorted").encode
_SEQUENCE = re.compile(r"[0-9]{1,128}")


def encode_line(record: Record) -> bytes:
    """The archive line of `record`, newline included."""
    line = _Line(
        FORMAT_VERSION,
        record.shard_id,
        str(record.sequence_number),
        record.sub_sequence_number,
        record.partition_key,
        record.arrival_ms,
        base64.b64encode(record.data).decode("ascii"),
    )
    return _encode(line) + b"\n"


def decode_line(line: bytes) -> Record:
    """The record of one archive line (trailing whitespace allowed); `ArchiveFormatError`
    when it is not one."""
    try:
        parsed = _decode(line)
    except msgspec.DecodeError as exc:
        reason = "not JSON" if "JSON" in str(exc) else "missing or mistyped field"
        raise ArchiveFormatError(f"archive line: {reason}") from exc
    if parsed.v != FORMAT_VERSION:
        raise ArchiveFormatError("archive line: unknown format version")
    if not _SEQUENCE.fullmatch(parsed.seq) or parsed.sub < 0 or parsed.arrival_ms < 0:
        raise ArchiveFormatError("archive line: bad sequence number or arrival time")
    try:
        data = base64.b64decode(parsed.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ArchiveFormatError("archive line: data is not base64") from exc
    return Record(parsed.shard, int(parsed.seq), parsed.sub, parsed.pk, data, parsed.arrival_ms)


_HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


def object_hour_ms(key: str) -> int | None:
    """The start of the delivery hour named in a Firehose object key (UTC), or None."""
    match = _HOUR.search(key)
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23):
        return None
    return calendar.timegm((year, month, day, hour, 0, 0)) * 1000
