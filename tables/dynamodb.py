"""The DynamoDB `StateStore`: a head item per shard naming a base and its deltas, each
chunked under the 400 KB item limit. The protocol and its types are in `tables.store`."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import LeaseLostError, StateStoreError
from core.records import LeaseFence, Position
from core.retry import Backoff, error_code, retry_call
from tables.savepoints import PREFIX as SAVEPOINT_PREFIX
from tables.state_items import delete_items, pages, query_items
from tables.store import Snapshot, StoredState, older

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
    """Snapshots in a DynamoDB table: per shard a head item naming the chain, and the chain's
    blobs chunked into binary items of at most `chunk_bytes` (`chunk#<version>#<index>`).

    A save never leaves a loadable mix:

    1. write the blob's chunks under a new random version (nothing else touched);
    2. switch the head: a base replaces the chain, a delta appends its version to the head's
       list. The head write is conditional on (a) the head still being the one read
       (`revision`; the loser of a race gets StateStoreError), (b) its position being at or
       before the new one (positions are zero-padded strings, so DynamoDB compares them as
       the integers they are), and with a fence (c) the lease item still naming this owner
       at this counter: one `TransactWriteItems` of the head `Put` and a `ConditionCheck`
       on the lease. (b) or (c) failing raises LeaseLostError;
    3. after a base, delete every chunk the head does not name (the old chain, and orphans of
       saves that died between 1 and 2). Deltas delete nothing: a delta save writes its
       chunks and the head, so its cost follows the keys changed.

    A crash before 2 leaves the old head: `load` gives the old chain. `load` reads the head,
    then each blob's chunks with consistent reads, and checks counts and SHA-256.
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

    def load(self, shard_id: str) -> StoredState | None:
        head = self._head(shard_id)
        if head is None:
            return None
        base = self._read_blob(shard_id, head["base"]["M"])
        deltas = tuple(self._read_blob(shard_id, d["M"]) for d in head["deltas"]["L"])
        return StoredState(
            shard_id=shard_id,
            position=_position_of(head),
            saved_at_ms=int(head["saved_at_ms"]["N"]),
            base=base,
            deltas=deltas,
            final=bool(head["final"]["BOOL"]),
        )

    def save(self, shard_id: str, snapshot: Snapshot, fence: LeaseFence | None = None) -> None:
        old = self._head(shard_id)
        if old is not None and older(snapshot.position, _position_of(old)):
            raise LeaseLostError(
                f"shard {shard_id}: a snapshot at {_position_of(old)} is stored, "
                f"this one is at {snapshot.position}"
            )
        if snapshot.delta and old is None:
            raise StateStoreError(f"shard {shard_id}: a delta needs a stored base")
        version = uuid.uuid4().hex
        blob = {
            "version": {"S": version},
            "chunks": {"N": str(self.write_chunks(shard_id, version, snapshot.data))},
            "size": {"N": str(len(snapshot.data))},
            "sha256": {"S": hashlib.sha256(snapshot.data).hexdigest()},
        }
        if snapshot.delta and old is not None:
            base, deltas = old["base"], [*old["deltas"]["L"], {"M": blob}]
        else:
            base, deltas = {"M": blob}, []
        head: dict[str, Any] = {
            "shard_id": {"S": shard_id},
            "item": {"S": HEAD},
            "revision": {"S": uuid.uuid4().hex},
            "base": base,
            "deltas": {"L": deltas},
            "position": {"S": _position_key(snapshot.position)},
            "saved_at_ms": {"N": str(snapshot.saved_at_ms)},
            "final": {"BOOL": snapshot.final},
        }
        if snapshot.position is not None:
            # Readable copies; `position` is the comparable form.
            head["sequence_number"] = {"S": str(snapshot.position.sequence_number)}
            head["sub_sequence_number"] = {"N": str(snapshot.position.sub_sequence_number)}
        self._switch_head(shard_id, head, old, fence)
        if not snapshot.delta:
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
        # Savepoints share the table (their partitions start with SAVEPOINT#) and outlive a
        # replay: they are what a replay may start from.
        shard_ids = sorted(
            {
                item["shard_id"]["S"]
                for item in self._scan_keys()
                if not item["shard_id"]["S"].startswith(SAVEPOINT_PREFIX)
            },
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

    def _switch_head(
        self,
        shard_id: str,
        head: dict[str, Any],
        old: dict[str, Any] | None,
        fence: LeaseFence | None,
    ) -> None:
        """Step 2 of a save: the conditional head write (see the class docstring)."""
        head_is_unchanged = (
            "attribute_not_exists(shard_id)" if old is None else "revision = :read_revision"
        )
        not_older = "(attribute_not_exists(#position) OR #position <= :position)"
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": head,
            "ConditionExpression": f"{head_is_unchanged} AND {not_older}",
            "ExpressionAttributeNames": {"#position": "position"},
            "ExpressionAttributeValues": {":position": head["position"]},
        }
        if old is not None:
            put["ExpressionAttributeValues"][":read_revision"] = old["revision"]
        try:
            if fence is None:
                self._call(self._client.put_item, **put)
            else:
                self._call(
                    self._client.transact_write_items,
                    TransactItems=[{"Put": put}, {"ConditionCheck": _lease_held(fence)}],
                )
        except StateStoreError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ClientError):
                raise
            code = error_code(cause)
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") for r in cause.response.get("CancellationReasons", [])]
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    raise LeaseLostError(
                        f"shard {shard_id}: lease {fence.shard_id if fence else ''} is not "
                        f"held by {fence.owner if fence else ''} at its counter: not saving"
                    ) from cause
                if not reasons or reasons[0] != "ConditionalCheckFailed":
                    raise
            elif code != "ConditionalCheckFailedException":
                raise
            self._head_condition_failed(shard_id, head, cause)

    def _head_condition_failed(
        self, shard_id: str, head: dict[str, Any], cause: ClientError
    ) -> None:
        current = self._head(shard_id)
        if current is not None and current["position"]["S"] > head["position"]["S"]:
            raise LeaseLostError(
                f"shard {shard_id}: a snapshot at {_position_of(current)} was saved meanwhile"
            ) from cause
        raise StateStoreError(
            f"shard {shard_id}: another writer saved state since it was read"
        ) from cause

    def _read_blob(self, shard_id: str, blob: dict[str, Any]) -> bytes:
        version = blob["version"]["S"]
        expected = int(blob["chunks"]["N"])
        chunks = [
            bytes(item["data"]["B"])
            for item in self._query(shard_id, f"{CHUNK_PREFIX}{version}#", with_data=True)
        ]
        data = b"".join(chunks)
        if len(chunks) != expected or hashlib.sha256(data).hexdigest() != blob["sha256"]["S"]:
            raise StateStoreError(
                f"shard {shard_id}: snapshot version {version} is incomplete or corrupt "
                f"({len(chunks)} of {expected} chunks)"
            )
        return data

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
        return query_items(
            self._call, self._client, self.table_name, shard_id, prefix, with_data=with_data
        )

    def _scan_keys(self) -> Iterator[dict[str, Any]]:
        return pages(
            self._call,
            self._client.scan,
            TableName=self.table_name,
            ConsistentRead=True,
            ProjectionExpression="shard_id, #item",
            ExpressionAttributeNames={"#item": "item"},
        )

    def _delete_keys(self, shard_id: str, items: list[str]) -> None:
        """Delete items of one shard (`tables.state_items.delete_items`)."""
        delete_items(
            self._call,
            self._client,
            self.table_name,
            self._backoff,
            partition=shard_id,
            items=items,
        )


_SEQUENCE_DIGITS: Final = 129
"""Kinesis sequence numbers have up to 129 digits (`0|([1-9]\\d{0,128})`)."""


def _position_key(position: Position | None) -> str:
    """A string that orders like the position: zero-padded sequence and sub-sequence
    numbers; "-" (before "0") for no position."""
    if position is None:
        return "-"
    return f"{position.sequence_number:0{_SEQUENCE_DIGITS}d}.{position.sub_sequence_number:020d}"


def _position_of(head: dict[str, Any]) -> Position | None:
    if "sequence_number" not in head:
        return None
    return Position(int(head["sequence_number"]["S"]), int(head["sub_sequence_number"]["N"]))


def _lease_held(fence: LeaseFence) -> dict[str, Any]:
    """The ConditionCheck: the KCL lease item still names this owner at this counter.

    While KCL 3 hands a lease over gracefully, `leaseOwner` already names the next worker and
    `checkpointOwner` the one still processing until its final checkpoint: that one holds
    the lease for our saves too (else its final save, at SHARD_END its children's base, is
    refused and the shard end stalls until the hand-over times out)."""
    owns = "(checkpointOwner = :me OR (leaseOwner = :me AND attribute_not_exists(checkpointOwner)))"
    return {
        "TableName": fence.table,
        "Key": {"leaseKey": {"S": fence.shard_id}},
        "ConditionExpression": f"{owns} AND leaseCounter >= :counter",
        "ExpressionAttributeValues": {
            ":me": {"S": fence.owner},
            ":counter": {"N": str(fence.counter)},
        },
    }
