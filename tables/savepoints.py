"""Savepoints: a consistent record of every shard's state snapshot and stream position, kept
for a configured time, from which a replay starts with that state.

Consistency. Shards are independent (nothing is shared between them), so a savepoint does
not need one instant across shards; it needs each shard's state to match its own position.
The checkpoint step saves a snapshot that includes every record up to a position *before* it
commits that position, so the stored snapshot head is always a consistent (state, position)
pair. A savepoint is the set of per-shard records, one per shard, each copied from that shard's
snapshot head after a completed save: the base and deltas (their bytes), the position they
include (sequence and sub-sequence number, or the shard's lease sentinel when it has no
snapshot), and its lineage (parents, hash range) so a lease that disappeared can be recreated.
Replaying from it reads each shard from *its* position: every record after it is applied to
exactly the state that preceded it, as in the straight run.

Storage. Items in the state table, because a savepoint is per-shard state of one region (shard
ids repeat across regional streams) and the state table already has the right key, capacity
mode and permissions: no new resource, and a savepoint costs one write per 300 KB chunk.

- `shard_id = "SAVEPOINT#"`, `item = "<created_ms 13 digits>#<id>"`: the index, one item per
  savepoint holding its manifest (msgpack); a Query of this one partition lists savepoints in
  time order without scanning the state table.
- `shard_id = "SAVEPOINT#<id>"`, `item = "<shard>#<blob 4 digits>#<chunk 6 digits>"`: the
  blobs, chunked under DynamoDB's 400 KB item limit.

Every partition key starts with `SAVEPOINT#`, which no Kinesis shard id does; the state store's
`delete_all` (replay) leaves them alone. Expired savepoints are removed by `prune`; the index
item is written last and deleted first, so a savepoint is listed only while it is whole.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StateStoreError
from core.records import Position
from core.retry import Backoff, retry_call
from tables.state_items import delete_items, query_items

PREFIX: Final = "SAVEPOINT#"
INDEX: Final = PREFIX
CHUNK_BYTES: Final = 300_000


class ShardSavepoint(msgspec.Struct, frozen=True):
    """One shard in a savepoint: where to read from and the state that goes with it.

    `checkpoint` is a sequence number in decimal (with `sub_sequence_number`: records after
    it are read, the state includes it) or a sentinel (TRIM_HORIZON, AT_TIMESTAMP with
    `at_timestamp_ms`, LATEST, SHARD_END); kept as text because sequence numbers do not fit
    msgpack's 64-bit integers. `blobs` is the number of state blobs (base then deltas); 0
    means the shard had no stored state."""

    shard_id: str
    checkpoint: str
    blobs: int
    sub_sequence_number: int = 0
    saved_at_ms: int = 0
    final: bool = False
    parent_ids: tuple[str, ...] = ()
    hash_keys: tuple[str, str] | None = None
    """The hash key range, as text (128-bit keys do not fit msgpack's integers)."""
    at_timestamp_ms: int | None = None
    sha256: tuple[str, ...] = ()
    size: int = 0

    @property
    def hash_range(self) -> tuple[int, int] | None:
        return None if self.hash_keys is None else (int(self.hash_keys[0]), int(self.hash_keys[1]))

    @staticmethod
    def keys_of(hash_range: tuple[int, int] | None) -> tuple[str, str] | None:
        return None if hash_range is None else (str(hash_range[0]), str(hash_range[1]))

    @property
    def start(self) -> Position | str:
        if self.checkpoint.isdigit():
            return Position(int(self.checkpoint), self.sub_sequence_number)
        return self.checkpoint

    @staticmethod
    def checkpoint_fields(start: Position | str) -> tuple[str, int]:
        """The `checkpoint` and `sub_sequence_number` of `start`."""
        if isinstance(start, Position):
            return str(start.sequence_number), start.sub_sequence_number
        return start, 0


class Savepoint(msgspec.Struct, frozen=True):
    id: str
    created_at_ms: int
    expires_at_ms: int
    shards: tuple[ShardSavepoint, ...]
    reason: str = "on demand"

    @property
    def size(self) -> int:
        return sum(shard.size for shard in self.shards)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Savepoint)


def new_id(created_at_ms: int) -> str:
    """Sortable by time, unique without coordination."""
    return f"sp-{created_at_ms}-{uuid.uuid4().hex[:8]}"


class SavepointStore:
    """Writes, lists, reads and prunes savepoints in the state table (layout: module docstring)."""

    def __init__(self, client: Any, table_name: str, backoff: Backoff | None = None) -> None:
        self._client = client
        self.table_name = table_name
        self._backoff = backoff or Backoff()

    def write(self, savepoint: Savepoint, blobs: dict[str, tuple[bytes, ...]]) -> None:
        """Store `savepoint` with each shard's blobs: chunks first, the index item last, so
        a savepoint that died half-written is never listed (its chunks go at `prune`)."""
        for shard in savepoint.shards:
            chain = blobs.get(shard.shard_id, ())
            if len(chain) != shard.blobs:
                raise StateStoreError(
                    f"savepoint {savepoint.id}: shard {shard.shard_id} has {len(chain)} blobs, "
                    f"its record says {shard.blobs}"
                )
            for number, blob in enumerate(chain):
                for index in range(0, max(len(blob), 1), CHUNK_BYTES):
                    self._call(
                        self._client.put_item,
                        TableName=self.table_name,
                        Item={
                            "shard_id": {"S": PREFIX + savepoint.id},
                            "item": {"S": f"{shard.shard_id}#{number:04d}#{index:012d}"},
                            "data": {"B": blob[index : index + CHUNK_BYTES]},
                        },
                    )
        self._call(
            self._client.put_item,
            TableName=self.table_name,
            Item={
                "shard_id": {"S": INDEX},
                "item": {"S": _index_key(savepoint)},
                "manifest": {"B": _encoder.encode(savepoint)},
                "expires_at_ms": {"N": str(savepoint.expires_at_ms)},
            },
        )

    def all(self) -> list[Savepoint]:
        """Every whole savepoint, oldest first."""
        return [
            _decoder.decode(bytes(item["manifest"]["B"]))
            for item in self._query(INDEX, "", with_data=True)
        ]

    def get(self, savepoint_id: str) -> Savepoint:
        for savepoint in self.all():
            if savepoint.id == savepoint_id:
                return savepoint
        raise StateStoreError(f"no savepoint {savepoint_id!r} (`luxflow savepoint list`)")

    def latest_at(self, at_ms: int) -> Savepoint:
        """The latest savepoint taken at or before `at_ms`."""
        before = [sp for sp in self.all() if sp.created_at_ms <= at_ms]
        if not before:
            raise StateStoreError("no savepoint was taken at or before that time")
        return before[-1]

    def blobs(self, savepoint: Savepoint, shard: ShardSavepoint) -> tuple[bytes, ...]:
        """The shard's state blobs (base, then deltas), checked against their SHA-256."""
        chunks: dict[int, list[bytes]] = {}
        for item in self._query(PREFIX + savepoint.id, f"{shard.shard_id}#", with_data=True):
            number = int(item["item"]["S"].rsplit("#", 2)[1])
            chunks.setdefault(number, []).append(bytes(item["data"]["B"]))
        chain = tuple(b"".join(chunks.get(number, [])) for number in range(shard.blobs))
        digests = tuple(hashlib.sha256(blob).hexdigest() for blob in chain)
        if digests != shard.sha256:
            raise StateStoreError(
                f"savepoint {savepoint.id}: the state of shard {shard.shard_id} is incomplete "
                "or corrupt"
            )
        return chain

    def delete(self, savepoint: Savepoint) -> None:
        # The index first: from then on the savepoint is not listed, whatever happens next.
        self._delete(INDEX, [_index_key(savepoint)])
        self._delete(
            PREFIX + savepoint.id,
            [item["item"]["S"] for item in self._query(PREFIX + savepoint.id, "", with_data=False)],
        )

    def prune(self, now_ms: int) -> list[str]:
        """Delete the savepoints that expired by `now_ms`; returns their ids."""
        expired = [sp for sp in self.all() if sp.expires_at_ms <= now_ms]
        for savepoint in expired:
            self.delete(savepoint)
        return [sp.id for sp in expired]

    # -- internals ----------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return retry_call(lambda: fn(**kwargs), self._backoff)
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"state table {self.table_name!r}: {exc}") from exc

    def _query(self, partition: str, prefix: str, *, with_data: bool) -> Iterator[dict[str, Any]]:
        return query_items(
            self._call, self._client, self.table_name, partition, prefix, with_data=with_data
        )

    def _delete(self, partition: str, items: list[str]) -> None:
        delete_items(
            self._call,
            self._client,
            self.table_name,
            self._backoff,
            partition=partition,
            items=items,
        )


def _index_key(savepoint: Savepoint) -> str:
    return f"{savepoint.created_at_ms:013d}#{savepoint.id}"


def is_savepoint_partition(shard_id: str) -> bool:
    """Whether a state-table partition belongs to savepoints rather than to a shard."""
    return shard_id.startswith(PREFIX)
