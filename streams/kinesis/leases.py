"""The KCL lease table: shard leases and checkpoints, shared by both runners.

Items use the KCL's attribute names and types (`leaseKey` S, `leaseOwner` S, `leaseCounter` N,
`checkpoint` S, `checkpointSubSequenceNumber` N, `ownerSwitchesSinceCheckpoint` N,
`parentShardId` SS, `startingHashKey`/`endingHashKey` S), so the KCL MultiLangDaemon and the
local runner can take over from each other. Every write that needs the lease is conditional on
`leaseOwner` and `leaseCounter` and increments the counter, exactly as the KCL does: a worker
that lost its lease finds out at its next write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import CheckpointError, LeaseLostError
from core.records import AT_TIMESTAMP, SENTINELS, SHARD_END, TRIM_HORIZON, LeaseFence, Position
from core.retry import Backoff, retry_call

log = logging.getLogger(__name__)

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

    def with_backoff(self, backoff: Backoff) -> LeaseTable:
        """The same table under another retry budget (lease renewal retries briefly and tries
        again at its next round, rather than wait out a long backoff)."""
        return LeaseTable(self._client, self.table_name, backoff)

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
        """One lease-table call under the retry policy. A `ClientError` that retries did not
        fix propagates for the caller to classify; anything else (connection refused or
        reset, timeouts) becomes `CheckpointError`."""
        try:
            return retry_call(lambda: fn(**kwargs), self._backoff)
        except ClientError:
            raise
        except (BotoCoreError, OSError) as exc:
            raise CheckpointError(f"lease table {self.table_name!r}: {exc!r}") from exc

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
                applied = self._already_applied(lease, set_parts, remove)
                if applied is not None:
                    return applied
                raise LeaseLostError(
                    f"lease {lease.shard_id} changed under us (counter {lease.counter})"
                ) from exc
            raise CheckpointError(f"cannot update lease {lease.shard_id}: {exc}") from exc
        return _parse(response["Attributes"])

    def _already_applied(
        self, lease: Lease, set_parts: dict[str, dict[str, str]], remove: tuple[str, ...]
    ) -> Lease | None:
        """After a failed condition: was it our own write, applied by an attempt whose answer
        was lost (a read timeout) and then retried? Yes when the item is exactly what that
        write leaves: counter + 1, our values set, the removed attributes gone."""
        response = self._call(
            self._client.get_item,
            TableName=self.table_name,
            Key={"leaseKey": {"S": lease.shard_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None or item.get("leaseCounter") != {"N": str(lease.counter + 1)}:
            return None
        owner_kept = "leaseOwner" not in set_parts and "leaseOwner" not in remove
        if owner_kept and item.get("leaseOwner", {}).get("S") != lease.owner:
            return None
        if any(item.get(attr) != value for attr, value in set_parts.items()):
            return None
        if any(attr in item for attr in remove):
            return None
        return _parse(item)

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

    def reset(self, lease: Lease, initial: Position | str, at_timestamp_ms: int | None) -> Lease:
        """Replay: move an UNOWNED lease to `initial`: TRIM_HORIZON, AT_TIMESTAMP, or a
        position (a savepoint's; reading resumes after it)."""
        sequence, sub = _checkpoint_values(initial)
        parts: dict[str, dict[str, str]] = {
            "checkpoint": {"S": sequence},
            "checkpointSubSequenceNumber": {"N": sub},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        }
        if initial == AT_TIMESTAMP:
            if at_timestamp_ms is None:
                raise CheckpointError("an AT_TIMESTAMP reset needs a timestamp")
            parts[AT_TIMESTAMP_MS_ATTR] = {"N": str(at_timestamp_ms)}
            return self._update(lease, parts, expected_owner=None)
        return self._update(lease, parts, remove=(AT_TIMESTAMP_MS_ATTR,), expected_owner=None)


class LeaseCheckpointer:
    """`Checkpointer` for the local runner: writes checkpoints to the leases it holds, and
    renews them from the runner's renewal thread (`renew_all`), independent of processing.

    Thread-safe: the shard threads checkpoint, the renewal thread renews, the runner takes and
    releases; writes of one lease are serialized (each is conditional on the counter the
    previous one left). A lease is lost when a conditional write fails (another worker took
    it) or when renewal kept failing for `failover_ms`; from then on `fence` and `checkpoint`
    raise `LeaseLostError` without any call to AWS.
    """

    def __init__(
        self,
        table: LeaseTable,
        *,
        renew_table: LeaseTable | None = None,
        failover_ms: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._renew_table = renew_table or table
        self._failover_s = failover_ms / 1000
        self._monotonic = monotonic
        self._held: dict[str, Lease] = {}
        self._renewed_s: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, shard_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(shard_id, threading.Lock())

    # -- held leases ---------------------------------------------------------------------

    def hold(self, lease: Lease) -> None:
        """Start holding `lease` (just taken by this worker)."""
        with self._lock(lease.shard_id):
            self._held[lease.shard_id] = lease
            self._renewed_s[lease.shard_id] = self._monotonic()

    def holds(self, shard_id: str) -> bool:
        return shard_id in self._held

    def lease(self, shard_id: str) -> Lease | None:
        return self._held.get(shard_id)

    def held_ids(self) -> list[str]:
        return list(self._held)

    def forget(self, shard_id: str) -> Lease | None:
        """Stop holding the lease (ended shard, or lost); returns it if it was held."""
        with self._lock(shard_id):
            self._renewed_s.pop(shard_id, None)
            return self._held.pop(shard_id, None)

    # -- Checkpointer --------------------------------------------------------------------

    def fence(self, shard_id: str) -> LeaseFence | None:
        lease = self._held.get(shard_id)
        if lease is None or lease.owner is None:
            raise LeaseLostError(f"lease {shard_id} is not held by this worker")
        return LeaseFence(self._table.table_name, shard_id, lease.owner, lease.counter)

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        with self._lock(shard_id):
            lease = self._held.get(shard_id)
            if lease is None:
                raise LeaseLostError(f"lease {shard_id} is not held by this worker")
            try:
                self._held[shard_id] = self._table.checkpoint(lease, position)
            except LeaseLostError:
                self._held.pop(shard_id, None)
                raise
            self._renewed_s[shard_id] = self._monotonic()

    # -- renewal -------------------------------------------------------------------------

    def renew_all(self) -> list[str]:
        """Renew every held lease once; returns the shards whose lease is now lost."""
        lost = []
        for shard_id in self.held_ids():
            if not self.renew(shard_id):
                lost.append(shard_id)
        return lost

    def renew(self, shard_id: str) -> bool:
        """Renew one lease; False once it is lost. A renewal that fails for another reason
        (throttled or unreachable past its retries) is retried at the next round; the lease
        counts as lost once no renewal succeeded for the failover time, as other workers
        may take it then."""
        with self._lock(shard_id):
            lease = self._held.get(shard_id)
            if lease is None:
                return False
            try:
                self._held[shard_id] = self._renew_table.renew(lease)
            except LeaseLostError as exc:
                log.warning("shard %s: lease lost: %s", shard_id, exc)
                self._held.pop(shard_id, None)
                return False
            except (CheckpointError, ClientError) as exc:
                since_s = self._monotonic() - self._renewed_s.get(shard_id, 0.0)
                if since_s < self._failover_s:
                    log.warning("shard %s: lease renewal failed, retrying: %s", shard_id, exc)
                    return True
                log.error(
                    "shard %s: no lease renewal for %.1f s (failover time): giving the shard up",
                    shard_id,
                    since_s,
                )
                self._held.pop(shard_id, None)
                return False
            self._renewed_s[shard_id] = self._monotonic()
            return True
