"""Durable state snapshots: the `StateStore` protocol, an in-memory store for tests, and a
DynamoDB store that chunks large snapshots under the 400 KB item limit.

Where snapshots sit in the checkpoint step (DESIGN.md, "Delivery"): flush sinks -> `save`
the snapshot that includes every record up to `position` -> write the checkpoint. On start,
`load` gives the state and the position it includes; records at or below it are not applied
again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StateStoreError
from core.records import Position
from core.retry import Backoff, error_code, retry_call


class Snapshot(msgspec.Struct, frozen=True):
    """One shard's table state as of `position` (None: before any record of the shard).

    `data` is `ShardState.snapshot()`'s bytes. `final` marks the snapshot taken at SHARD_END,
    the one a split or merge child starts from.
    """

    shard_id: str
    position: Position | None
    saved_at_ms: int
    data: bytes
    final: bool = False


class StateStore(Protocol):
    """Where shard snapshots live. Contract:

    - `save(shard_id, snapshot)` replaces the shard's snapshot atomically: after it returns,
      `load` gives the new one; if it raises or the process dies inside it, `load` gives the
      old one or the new one, whole, never a mix. A failed save raises `StateStoreError`
      and the checkpoint that needed it is aborted.
    - `load(shard_id)` gives the last saved snapshot, or None when there is none.
    - `delete(shard_id)` forgets one shard; `delete_all()` forgets every shard (for replay).
    """

    def load(self, shard_id: str) -> Snapshot | None: ...

    def save(self, shard_id: str, snapshot: Snapshot) -> None: ...

    def delete(self, shard_id: str) -> None: ...

    def delete_all(self) -> None: ...


class InMemoryStateStore:
    """A StateStore in a dict, for tests and `luxflow demo` without persistence."""

    def __init__(self) -> None:
        self.snapshots: dict[str, Snapshot] = {}
        self.saves = 0

    def load(self, shard_id: str) -> Snapshot | None:
        return self.snapshots.get(shard_id)

    def save(self, shard_id: str, snapshot: Snapshot) -> None:
        self.snapshots[shard_id] = snapshot
        self.saves += 1

    def delete(self, shard_id: str) -> None:
        self.snapshots.pop(shard_id, None)

    def delete_all(self) -> None:
        self.snapshots.clear()


HEAD: Final = "head"
CHUNK_PREFIX: Final = "chunk#"
MAX_CHUNK_BYTES: Final = 300_000
"""Well under DynamoDB's 400 KB item limit, which counts attribute names and keys too."""


def ensure_table(client: Any, name: str) -> None:
    """Create the snapshot table (on demand capacity) if it does not exist; idempotent.
    Key: `shard_id` (S, hash) + `item` (S, range): "head", or "chunk#<version>#<index>"."""
    try:
        client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "shard_id", "KeyType": "HASH"},
                {"AttributeName": "item", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "shard_id", "AttributeType": "S"},
                {"AttributeName": "item", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise StateStoreError(f"cannot create state table {name!r}: {exc}") from exc
    except BotoCoreError as exc:
        raise StateStoreError(f"cannot create state table {name!r}: {exc}") from exc
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


class DynamoDBStateStore:
    """Snapshots in a DynamoDB table, chunked into binary items of at most `chunk_bytes`.

    A save never leaves a loadable mix of two snapshots:

    1. write the chunks under a new random version (old chunks untouched);
    2. switch the head item to the new version, on condition that it still names the
       version read before (so two writers cannot interleave: the loser gets StateStoreError);
    3. delete every chunk of other versions (the old one, and orphans of saves that died
       between 1 and 2).

    A crash before 2 leaves the old head and old chunks: `load` gives the old snapshot. `load`
    reads the head, then that version's chunks with consistent reads, and checks their count
    and SHA-256 against the head.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        backoff: Backoff | None = None,
        *,
        chunk_bytes: int = MAX_CHUNK_BYTES,
    ) -> None:
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_BYTES}, got {chunk_bytes}")
        self._client = client
        self.table_name = table_name
        self._backoff = backoff or Backoff()
        self.chunk_bytes = chunk_bytes

    # -- StateStore ---------------------------------------------------------------------

    def load(self, shard_id: str) -> Snapshot | None:
        head = self._head(shard_id)
        if head is None:
            return None
        version = head["version"]["S"]
        expected = int(head["chunks"]["N"])
        chunks: list[bytes] = []
        for item in self._query(shard_id, f"{CHUNK_PREFIX}{version}#", with_data=True):
            chunks.append(bytes(item["data"]["B"]))
        data = b"".join(chunks)
        if len(chunks) != expected or hashlib.sha256(data).hexdigest() != head["sha256"]["S"]:
            raise StateStoreError(
                f"shard {shard_id}: snapshot version {version} is incomplete or corrupt "
                f"({len(chunks)} of {expected} chunks)"
            )
        position = None
        if "sequence_number" in head:
            position = Position(
                int(head["sequence_number"]["S"]), int(head["sub_sequence_number"]["N"])
            )
        return Snapshot(
            shard_id=shard_id,
            position=position,
            saved_at_ms=int(head["saved_at_ms"]["N"]),
            data=data,
            final=bool(head["final"]["BOOL"]),
        )

    def save(self, shard_id: str, snapshot: Snapshot) -> None:
        old = self._head(shard_id)
        version = uuid.uuid4().hex
        chunk_count = self.write_chunks(shard_id, version, snapshot.data)
        head: dict[str, Any] = {
            "shard_id": {"S": shard_id},
            "item": {"S": HEAD},
            "version": {"S": version},
            "chunks": {"N": str(chunk_count)},
            "size": {"N": str(len(snapshot.data))},
            "sha256": {"S": hashlib.sha256(snapshot.data).hexdigest()},
            "saved_at_ms": {"N": str(snapshot.saved_at_ms)},
            "final": {"BOOL": snapshot.final},
        }
        if snapshot.position is not None:
            # Sequence numbers exceed DynamoDB's 38 significant digits: stored as a string.
            head["sequence_number"] = {"S": str(snapshot.position.sequence_number)}
            head["sub_sequence_number"] = {"N": str(snapshot.position.sub_sequence_number)}
        if old is None:
            head_is_unchanged = "attribute_not_exists(shard_id)"
            values: dict[str, Any] = {}
        else:
            head_is_unchanged = "version = :read_version"
            values = {":read_version": old["version"]}
        try:
            self._call(
                self._client.put_item,
                TableName=self.table_name,
                Item=head,
                ConditionExpression=head_is_unchanged,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except StateStoreError as exc:
            if isinstance(exc.__cause__, ClientError) and (
                error_code(exc.__cause__) == "ConditionalCheckFailedException"
            ):
                raise StateStoreError(
                    f"shard {shard_id}: another writer saved state since it was read"
                ) from exc.__cause__
            raise
        self._delete_keys(
            shard_id,
            [
                item["item"]["S"]
                for item in self._query(shard_id, CHUNK_PREFIX, with_data=False)
                if not item["item"]["S"].startswith(f"{CHUNK_PREFIX}{version}#")
            ],
        )

    def delete(self, shard_id: str) -> None:
        # Head first: from then on nothing is loadable, whatever happens to the chunks.
        self._delete_keys(shard_id, [HEAD])
        self._delete_keys(
            shard_id,
            [item["item"]["S"] for item in self._query(shard_id, "", with_data=False)],
        )

    def delete_all(self) -> None:
        shard_ids = sorted(
            {item["shard_id"]["S"] for item in self._scan_keys()},
        )
        for shard_id in shard_ids:
            self.delete(shard_id)

    # -- steps (public so tests can stage a crash between them) -------------------------

    def write_chunks(self, shard_id: str, version: str, data: bytes) -> int:
        """Step 1 of a save: write `data`'s chunks under `version`. Returns the chunk count.
        Without step 2 they are invisible to `load` and removed by the next save."""
        chunks = self._split(data)
        for index, chunk in enumerate(chunks):
            self._call(
                self._client.put_item,
                TableName=self.table_name,
                Item={
                    "shard_id": {"S": shard_id},
                    "item": {"S": f"{CHUNK_PREFIX}{version}#{index:06d}"},
                    "data": {"B": chunk},
                },
            )
        return len(chunks)

    # -- internals ----------------------------------------------------------------------

    def _split(self, data: bytes) -> list[bytes]:
        size = self.chunk_bytes
        return [data[i : i + size] for i in range(0, len(data), size)]

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return retry_call(lambda: fn(**kwargs), self._backoff)
        except (ClientError, BotoCoreError) as exc:
            raise StateStoreError(f"state table {self.table_name!r}: {exc}") from exc

    def _head(self, shard_id: str) -> dict[str, Any] | None:
        response = self._call(
            self._client.get_item,
            TableName=self.table_name,
            Key={"shard_id": {"S": shard_id}, "item": {"S": HEAD}},
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query(self, shard_id: str, prefix: str, *, with_data: bool) -> Iterator[dict[str, Any]]:
        """Items of `shard_id` whose `item` starts with `prefix`, in key order."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "ConsistentRead": True,
            "KeyConditionExpression": "shard_id = :shard",
            "ExpressionAttributeNames": {"#item": "item"},
            "ExpressionAttributeValues": {":shard": {"S": shard_id}},
        }
        if prefix:  # DynamoDB refuses an empty begins_with operand
            kwargs["KeyConditionExpression"] += " AND begins_with(#item, :prefix)"
            kwargs["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        else:
            del kwargs["ExpressionAttributeNames"]
        if not with_data:
            kwargs["ProjectionExpression"] = "shard_id, #item"
            kwargs["ExpressionAttributeNames"] = {"#item": "item"}
        while True:
            response = self._call(self._client.query, **kwargs)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _scan_keys(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "ConsistentRead": True,
            "ProjectionExpression": "shard_id, #item",
            "ExpressionAttributeNames": {"#item": "item"},
        }
        while True:
            response = self._call(self._client.scan, **kwargs)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _delete_keys(self, shard_id: str, items: list[str]) -> None:
        """Delete items of one shard, 25 per BatchWriteItem, re-sending exactly the
        unprocessed ones."""
        for offset in range(0, len(items), 25):
            pending: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"shard_id": {"S": shard_id}, "item": {"S": item}}}}
                for item in items[offset : offset + 25]
            ]
            retry = 0
            while pending:
                response = self._call(
                    self._client.batch_write_item, RequestItems={self.table_name: pending}
                )
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if pending:
                    if retry + 1 >= self._backoff.max_attempts:
                        raise StateStoreError(
                            f"shard {shard_id}: {len(pending)} deletes left unprocessed"
                        )
                    self._backoff.pause(retry)
                    retry += 1


__all__ = [
    "CHUNK_PREFIX",
    "HEAD",
    "MAX_CHUNK_BYTES",
    "DynamoDBStateStore",
    "InMemoryStateStore",
    "Snapshot",
    "StateStore",
    "ensure_table",
]
