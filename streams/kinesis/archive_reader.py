"""Reading the raw-record archive (S3, `streams.kinesis.archive`'s format): its objects in
delivery order, and each object's lines as records or as lines that are not records.

Firehose delivers at least once: an object can repeat records of an earlier one (a retried
delivery). `ShardOrder` gives each record once and every shard's records in sequence order.
"""

from __future__ import annotations

import gzip
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlparse

from core.errors import ConfigError
from core.records import Position, Record
from streams.kinesis.archive import ArchiveFormatError, decode_line, object_hour_ms

HOUR_MS: Final = 3_600_000
LATE_DELIVERY_MS: Final = HOUR_MS
"""Firehose names an object by the arrival hour of its oldest record and delivers it within
its buffers (5 + 1 minutes); `--from` keeps the objects of the hour before too, so a record
that arrived after TIME in an object named for an earlier hour is read. A delivery retried
for longer than this (S3 unavailable for an hour) is missed by a replay with --from."""


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    size: int
    hour_ms: int | None
    """The hour its name says (None: not a Firehose object name; always read)."""


@dataclass(frozen=True)
class BadLine:
    """A line of an object that is not a record: kept whole, with the stable reason."""

    key: str
    line_number: int
    data: bytes
    reason: str


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix); `ConfigError` for anything else."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"--archive must be s3://BUCKET/PREFIX, not {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def list_objects(
    s3: Any, bucket: str, prefix: str, *, from_ms: int | None = None, to_ms: int | None = None
) -> list[ArchiveObject]:
    """The objects under `prefix` that may hold records arrived in [from_ms, to_ms), in key
    order (delivery order: Firehose's keys start with the hour and the time of delivery)."""
    found: list[ArchiveObject] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = s3.list_objects_v2(**kwargs)
        for item in page.get("Contents", []):
            key = item["Key"]
            hour_ms = object_hour_ms(key)
            if hour_ms is not None:
                if from_ms is not None and hour_ms + HOUR_MS + LATE_DELIVERY_MS <= from_ms:
                    continue
                if to_ms is not None and hour_ms >= to_ms:
                    continue  # its oldest record arrived at or after `to_ms`
            found.append(ArchiveObject(key, int(item["Size"]), hour_ms))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or token is None:
            break
        kwargs["ContinuationToken"] = token
    return sorted(found, key=lambda o: o.key)


def object_lines(key: str, body: bytes) -> Iterator[Record | BadLine]:
    """The lines of one object (GZIP or plain), each a `Record` or a `BadLine`. An object that
    does not decompress is one `BadLine` with all its bytes."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            yield BadLine(key, 0, body, "archive object: not a readable GZIP file")
            return
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield decode_line(line)
        except ArchiveFormatError as exc:
            yield BadLine(key, number, line, exc.reason)


RECENT_OBJECTS: Final = 16
"""How many objects back a repeated record is recognised as a repeat (a retried delivery is
written soon after the first)."""


@dataclass
class ShardOrder:
    """Each shard's records of one object, in sequence order, after the ones given before.

    Records outside [from_ms, to_ms) by arrival are left out. A record at or before the last
    one given for its shard is a repeat when one of the last `RECENT_OBJECTS` objects held it
    (counted in `repeated`, left out); otherwise it came out of its shard's order (two objects
    named in the same second, whose order the names cannot tell) and is returned apart, for
    the dead-letter output: a record is never given out of order and never dropped unseen.
    """

    from_ms: int | None = None
    to_ms: int | None = None
    last: dict[str, Position] = field(default_factory=dict)
    repeated: int = 0
    _recent: deque[set[tuple[str, Position]]] = field(
        default_factory=lambda: deque(maxlen=RECENT_OBJECTS)
    )

    def batches(self, records: Sequence[Record]) -> tuple[dict[str, list[Record]], list[Record]]:
        """(records to give per shard, in order; records out of order)."""
        by_shard: dict[str, list[Record]] = {}
        for record in records:
            if self.from_ms is not None and record.arrival_ms < self.from_ms:
                continue
            if self.to_ms is not None and record.arrival_ms >= self.to_ms:
                continue
            by_shard.setdefault(record.shard_id, []).append(record)
        given: dict[str, list[Record]] = {}
        out_of_order: list[Record] = []
        seen: set[tuple[str, Position]] = set()
        for shard_id in sorted(by_shard):
            last = self.last.get(shard_id)
            fresh: list[Record] = []
            for record in sorted(by_shard[shard_id], key=lambda r: r.position):
                identity = (shard_id, record.position)
                if identity in seen or any(identity in old for old in self._recent):
                    self.repeated += 1
                    continue
                seen.add(identity)
                if last is not None and record.position <= last:
                    out_of_order.append(record)
                    continue
                fresh.append(record)
                last = record.position
            if fresh:
                given[shard_id] = fresh
                self.last[shard_id] = fresh[-1].position
        self._recent.append(seen)
        return given, out_of_order
