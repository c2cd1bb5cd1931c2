"""The KCL lease table: shard leases and checkpoints, shared by both runners.

Items use the KCL's attribute names and types (`leaseKey` S, `leaseOwner` S, `leaseCounter` N,
`checkpoint` S, `checkpointSubSequenceNumber` N, `ownerSwitchesSinceCheckpoint` N,
`parentShardId` SS, `startingHashKey`/`endingHashKey` S), so the KCL MultiLangDaemon and the
local runner can take over from each other. Every write that needs the lease is conditional on
`leaseOwner` and `leaseCounter` and increments the counter, exactly as the KCL does: a worker
that lost its lease finds out at its next write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from core.errors import CheckpointError, LeaseLostError
from core.records import AT_TIMESTAMP, SENTINELS, SHARD_END, TRIM_HORIZON, Position
from core.retry import Backoff, is_retryable

AT_TIMESTAMP_MS_ATTR = "luxflowAtTimestampMs"
"""Our one extra attribute: the timestamp of an AT_TIMESTAMP replay, for both runners."""


class Lease(msgspec.Struct, frozen=True):
    shard_id: str
    checkpoint: Position | str
    owner: str | None
    counter: int
    parent_ids: tuple[str, ...] = ()
    owner_switches: int = 0
    at_timestamp_ms: int | None = None
    hash_range: tuple[int, int] | None = None

    def owns(self, hash_key: int) -> bool:
        """Whether a record with this hash key belongs to the shard (True if unknown)."""
        if self.hash_range is None:
            return True
        return self.hash_range[0] <= hash_key <= self.hash_range[1]

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


def _parse(item: dict[str, Any]) -> Lease:
    raw = item.get("checkpoint", {}).get("S", TRIM_HORIZON)
    checkpoint: Position | str
    if raw in SENTINELS:
        checkpoint = raw
    else:
        sub = int(item.get("checkpointSubSequenceNumber", {}).get("N", "0"))
        checkpoint = Position(int(raw), sub)
    at_ts = item.get(AT_TIMESTAMP_MS_ATTR, {}).get("N")
    low, high = item.get("startingHashKey", {}).get("S"), item.get("endingHashKey", {}).get("S")
    return Lease(
        shard_id=item["leaseKey"]["S"],
        checkpoint=checkpoint,
        owner=item.get("leaseOwner", {}).get("S"),
        counter=int(item.get("leaseCounter", {}).get("N", "0")),
        parent_ids=tuple(sorted(item.get("parentShardId", {}).get("SS", []))),
        owner_switches=int(item.get("ownerSwitchesSinceCheckpoint", {}).get("N", "0")),
        at_timestamp_ms=int(at_ts) if at_ts is not None else None,
        hash_range=(int(low), int(high)) if low is not None and high is not None else None,
    )


def _checkpoint_values(position: Position | str) -> tuple[str, str]:
    if isinstance(position, Position):
        return str(position.sequence_number), str(position.sub_sequence_number)
    return position, "0"


class LeaseTable:
    """Reads and conditionally writes the KCL lease table of one application."""

    def __init__(self, client: Any, table_name: str, backoff: Backoff | None = None) -> None:
        self._client = client
        self.table_name = table_name
        self._backoff = backoff or Backoff()

    # -- table ---------------------------------------------------------------------------

    def ensure_table(self) -> None:
        try:
            self._client.create_table(
                TableName=self.table_name,
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise CheckpointError(f"cannot create lease table: {exc}") from exc
        self._client.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                return fn(**kwargs)
            except ClientError as exc:
                if not is_retryable(exc) or attempt + 1 >= self._backoff.max_attempts:
                    raise
                self._backoff.pause(attempt)
                attempt += 1

    # -- reads ---------------------------------------------------------------------------

    def list(self) -> dict[str, Lease]:
        leases: dict[str, Lease] = {}
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        while True:
            try:
                page = self._call(self._client.scan, **kwargs)
            except ClientError as exc:
                raise CheckpointError(f"cannot read lease table: {exc}") from exc
            for item in page.get("Items", []):
                lease = _parse(item)
                leases[lease.shard_id] = lease
            if "LastEvaluatedKey" not in page:
                return leases
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, shard_id: str) -> Lease | None:
        try:
            response = self._call(
                self._client.get_item,
                TableName=self.table_name,
                Key={"leaseKey": {"S": shard_id}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise CheckpointError(f"cannot read lease {shard_id}: {exc}") from exc
        item = response.get("Item")
        return _parse(item) if item is not None else None

    # -- writes --------------------------------------------------------------------------

    def create_if_missing(
        self,
        shard_id: str,
        parent_ids: Iterable[str],
        hash_range: tuple[int, int],
        initial: str,
        at_timestamp_ms: int | None = None,
    ) -> None:
        """Add the lease of a new shard, unowned, at `initial` (a sentinel)."""
        item: dict[str, Any] = {
            "leaseKey": {"S": shard_id},
            "leaseCounter": {"N": "0"},
            "checkpoint": {"S": initial},
            "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
            "startingHashKey": {"S": str(hash_range[0])},
            "endingHashKey": {"S": str(hash_range[1])},
        }
        parents = sorted(parent_ids)
        if parents:
            item["parentShardId"] = {"SS": parents}
        if at_timestamp_ms is not None:
            item[AT_TIMESTAMP_MS_ATTR] = {"N": str(at_timestamp_ms)}
        try:
            self._call(
                self._client.put_item,
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise CheckpointError(f"cannot create lease {shard_id}: {exc}") from exc

    def _update(
        self,
        lease: Lease,
        set_parts: dict[str, dict[str, str]],
        *,
        remove: tuple[str, ...] = (),
        expected_owner: str | None,
    ) -> Lease:
        names = {"#counter": "leaseCounter"}
        values: dict[str, Any] = {
            ":expected_counter": {"N": str(lease.counter)},
            ":next_counter": {"N": str(lease.counter + 1)},
        }
        assignments = ["#counter = :next_counter"]
        for i, (attr, value) in enumerate(set_parts.items()):
            names[f"#a{i}"] = attr
            values[f":v{i}"] = value
            assignments.append(f"#a{i} = :v{i}")
        expression = "SET " + ", ".join(assignments)
        if remove:
            for j, attr in enumerate(remove):
                names[f"#r{j}"] = attr
            expression += " REMOVE " + ", ".join(f"#r{j}" for j in range(len(remove)))
        condition = "#counter = :expected_counter"
        if expected_owner is None:
            condition += " AND attribute_not_exists(#owner)"
        else:
            condition += " AND #owner = :expected_owner"
            values[":expected_owner"] = {"S": expected_owner}
        names["#owner"] = "leaseOwner"
        try:
            response = self._call(
                self._client.update_item,
                TableName=self.table_name,
                Key={"leaseKey": {"S": lease.shard_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLostError(
                    f"lease {lease.shard_id} changed under us (counter {lease.counter})"
                ) from exc
            raise CheckpointError(f"cannot update lease {lease.shard_id}: {exc}") from exc
        return _parse(response["Attributes"])

    def take(self, lease: Lease, owner: str) -> Lease:
        """Own `lease`, which must be unchanged since it was read (its counter)."""
        switches = lease.owner_switches + (0 if lease.owner in (None, owner) else 1)
        return self._update(
            lease,
            {"leaseOwner": {"S": owner}, "ownerSwitchesSinceCheckpoint": {"N": str(switches)}},
            expected_owner=lease.owner,
        )

    def renew(self, lease: Lease) -> Lease:
        return self._update(lease, {}, expected_owner=lease.owner)

    def checkpoint(self, lease: Lease, position: Position | str) -> Lease:
        sequence, sub = _checkpoint_values(position)
        return self._update(
            lease,
            {
                "checkpoint": {"S": sequence},
                "checkpointSubSequenceNumber": {"N": sub},
                "ownerSwitchesSinceCheckpoint": {"N": "0"},
            },
            remove=(AT_TIMESTAMP_MS_ATTR,),
            expected_owner=lease.owner,
        )

    def release(self, lease: Lease) -> Lease:
        """Give the lease up (graceful stop), so any worker may take it at once."""
        return self._update(lease, {}, remove=("leaseOwner",), expected_owner=lease.owner)

    def reset(self, lease: Lease, initial: str, at_timestamp_ms: int | None) -> Lease:
        """Replay: move an UNOWNED lease back to `initial` (TRIM_HORIZON or AT_TIMESTAMP)."""
        parts: dict[str, dict[str, str]] = {
            "checkpoint": {"S": initial},
            "checkpointSubSequenceNumber": {"N": "0"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        }
        if initial == AT_TIMESTAMP:
            if at_timestamp_ms is None:
                raise CheckpointError("an AT_TIMESTAMP reset needs a timestamp")
            parts[AT_TIMESTAMP_MS_ATTR] = {"N": str(at_timestamp_ms)}
            return self._update(lease, parts, expected_owner=None)
        return self._update(lease, parts, remove=(AT_TIMESTAMP_MS_ATTR,), expected_owner=None)


class LeaseCheckpointer:
    """`Checkpointer` for the local runner: writes checkpoints to the leases it holds."""

    def __init__(self, table: LeaseTable) -> None:
        self._table = table
        self.held: dict[str, Lease] = {}

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        lease = self.held.get(shard_id)
        if lease is None:
            raise LeaseLostError(f"lease {shard_id} is not held by this worker")
        try:
            self.held[shard_id] = self._table.checkpoint(lease, position)
        except LeaseLostError:
            self.held.pop(shard_id, None)
            raise
