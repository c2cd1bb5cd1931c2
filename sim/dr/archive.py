"""The raw-record archive across a region loss, on the drill's simulated clock: a model of the
archive's Firehose delivery and of S3 cross-region replication, and the survivor's read of the
lost region's tail from its replica.

- `ArchiveModel.advance(now_ms)`: every `buffer_ms` (the delivery stream's buffer interval) the
  records the region's stream took since the last delivery become one GZIP object under
  Firehose's key layout, one line per record in the archive's format (`encode_line`, which a
  unit test holds equal to the Firehose transformation Lambda's output), in the region's
  bucket; an object is copied to the other region's bucket `replication_ms` after its
  delivery (S3 Replication Time Control's 15 minutes, the bound 99.99 % of objects meet).
- `ArchiveModel.lose(now_ms)`: the region is gone. What the replica holds then is every object
  delivered `replication_ms` or more before; the records of the last buffer and the objects
  still replicating are lost with the region.

The survivor's read of its replica is `lighting.archive_tail`, which `luxflow dr failover
--archive` runs.
"""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.records import Record
from streams.kinesis.archive import encode_line
from streams.kinesis.reader import ShardReader, list_shards


def firehose_key(prefix: str, delivered_ms: int) -> str:
    """Firehose's name of an object delivered at `delivered_ms`."""
    at = datetime.fromtimestamp(delivered_ms / 1000, UTC)
    return f"{prefix}{at:%Y/%m/%d/%H}/luxflow-archive-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"


@dataclass
class Delivered:
    key: str
    delivered_ms: int
    records: list[Record]
    replicated: bool = False


@dataclass
class ArchiveModel:
    """One region's archive (`s3`, `bucket`) replicated to `replica_s3`, `replica_bucket`."""

    kinesis: Any
    stream: str
    s3: Any
    bucket: str
    replica_s3: Any
    replica_bucket: str
    prefix: str
    buffer_ms: int
    replication_ms: int
    objects: list[Delivered] = field(default_factory=list)
    lost_at_ms: int | None = None
    _readers: dict[str, ShardReader] = field(default_factory=dict)
    _next_delivery_ms: int | None = None

    def advance(self, now_ms: int) -> None:
        """Deliver the buffer if its interval has passed, and replicate what is due."""
        if self.lost_at_ms is not None:
            return
        if self._next_delivery_ms is None:
            self._next_delivery_ms = now_ms - now_ms % self.buffer_ms + self.buffer_ms
        if now_ms >= self._next_delivery_ms:
            self._deliver(now_ms)
            self._next_delivery_ms = now_ms - now_ms % self.buffer_ms + self.buffer_ms
        for obj in self.objects:
            if not obj.replicated and obj.delivered_ms + self.replication_ms <= now_ms:
                body = self.s3.get_object(Bucket=self.bucket, Key=obj.key)["Body"].read()
                self.replica_s3.put_object(Bucket=self.replica_bucket, Key=obj.key, Body=body)
                obj.replicated = True

    def lose(self, now_ms: int) -> None:
        """The region is lost at `now_ms`: replicate what is due by then, then nothing more."""
        self.advance(now_ms)
        self.lost_at_ms = now_ms

    def replicated_records(self) -> list[Record]:
        return [r for obj in self.objects if obj.replicated for r in obj.records]

    def _deliver(self, now_ms: int) -> None:
        records = self._read_new()
        if not records:
            return
        key = firehose_key(self.prefix, now_ms)
        body = b"".join(encode_line(record) for record in records)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(body))
        self.objects.append(Delivered(key, now_ms, records))

    def _read_new(self) -> list[Record]:
        """Every record the stream took since the last read (Firehose's source read)."""
        records: list[Record] = []
        for shard in list_shards(self.kinesis, self.stream):
            reader = self._readers.get(shard.shard_id)
            if reader is None:
                reader = ShardReader(
                    self.kinesis, self.stream, shard.shard_id, "TRIM_HORIZON", max_calls_per_s=100
                )
                self._readers[shard.shard_id] = reader
            while True:
                batch = reader.read()
                records.extend(batch.records)
                if not batch.records and batch.millis_behind_latest == 0:
                    break
        return records
