"""The region fence: a region writes its sites' items only while it can prove, against a quorum,
that nobody has taken them over.

Why: the command table is a global table in MREC mode (last writer wins by write time,
conditions checked on the local replica). A region that is cut off from the others but still
running keeps its devices, its stream and its workers; without a fence it keeps writing its
sites' items, and when it reconnects those writes (with later write times) can win over the
survivor's. The home epoch cannot stop it: the cut-off region never sees the failover.

How: each region holds a lease, an item in a small *quorum table* (production: a DynamoDB
global table in multi-region strong consistency, MRSC, with two replicas and a witness, so a
write succeeds only in a region that reaches a majority). Every worker process renews its
region's lease every `renew_ms` to `now + ttl_ms` (`RegionFence`); its command-table writes
pass through `FencedDynamoDB`, which refuses any write unless `now + margin_ms < until`, where
`until` is the end of the last renewal that succeeded. `margin_ms` is at least the longest a
single write call may take (the clients' connect + read timeouts), so a write that started
inside the lease landed before it ended. A failover (`luxflow dr failover`) *revokes* the lost
region's lease, and only once that lease ended `clock_skew_ms` ago by the survivor's clock;
a revoked lease can no longer be renewed, so after the revocation no write of the old region
lands, cut off or reconnected. `luxflow dr failback` releases it, after the returning region's
state and checkpoints were reset.

What a fenced write does: while the lease has lapsed but is not revoked (the quorum was
unreachable for a while), the write fails like an unavailable service (`RegionFenced`, HTTP
503): the sink keeps its buffer and the checkpoint step retries, so nothing is lost and the
shard resumes when a renewal succeeds. Once revoked, the write raises `LeaseLostError`: the
shard drops what it buffered, as when another worker took its lease, and the worker stops
(a restarted worker of a revoked region refuses to start); what it had not checkpointed is
re-read from the stream after the failback.

Cost of the bound: a region stops writing at most `ttl_ms - margin_ms` after its last
renewal, and the survivor may take its sites over `ttl_ms + clock_skew_ms` after it. Only
the command table is fenced: the lease, state and dead-letter tables are regional.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

import msgspec
from botocore.exceptions import ClientError

from core.clock import wall_clock_ms
from core.errors import LeaseLostError
from core.retry import describe_error, error_code

log = logging.getLogger(__name__)

FENCE_PK: Final = "FENCE"
FENCED_CODE: Final = "RegionFenced"


class FenceLease(msgspec.Struct, frozen=True):
    """A region's lease as the quorum table holds it (pk ``FENCE``, sk ``REGION#<region>``).
    ``revoked_at_ms``: set by a failover; the lease can no longer be renewed."""

    region: str
    until_ms: int
    revoked_at_ms: int | None = None


class FenceRevokedError(LeaseLostError):
    """The region's lease was revoked by a failover: its workers must not write again."""


class Quorum(Protocol):
    """The store of the regions' leases. Production: `DynamoDBQuorum` on an MRSC table."""

    def renew(self, region: str, until_ms: int) -> None:
        """Set `region`'s lease to end at `until_ms`. Raises `FenceRevokedError` if it is
        revoked; any other exception means the quorum was not reached (the lease keeps its
        previous end)."""
        ...

    def read(self, region: str) -> FenceLease | None:
        """`region`'s lease as the quorum holds it (a strongly consistent read)."""
        ...

    def revoke(self, region: str, now_ms: int, ended_before_ms: int) -> bool:
        """Revoke `region`'s lease if it ended before `ended_before_ms`; False if it is still
        live. Revoking a region that never held a lease is allowed (and keeps it out)."""
        ...

    def release(self, region: str) -> None:
        """Lift a revocation so that `region` can renew again (failback)."""
        ...


class DynamoDBQuorum:
    """`Quorum` on a DynamoDB table with string keys ``pk``/``sk`` (an MRSC global table in
    production; conditional writes and strongly consistent reads are what make it a quorum)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def _key(self, region: str) -> dict[str, Any]:
        return {"pk": {"S": FENCE_PK}, "sk": {"S": f"REGION#{region}"}}

    def renew(self, region: str, until_ms: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(region),
                UpdateExpression="SET until_ms = :until, #region = :region",
                ConditionExpression="attribute_not_exists(revoked_at_ms)",
                ExpressionAttributeNames={"#region": "region"},
                ExpressionAttributeValues={
                    ":until": {"N": str(until_ms)},
                    ":region": {"S": region},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise FenceRevokedError(
                    f"region {region} is fenced: a failover revoked its lease"
                ) from exc
            raise

    def read(self, region: str) -> FenceLease | None:
        item = self._client.get_item(
            TableName=self._table, Key=self._key(region), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        revoked = item.get("revoked_at_ms")
        return FenceLease(
            region=region,
            until_ms=int(item.get("until_ms", {"N": "0"})["N"]),
            revoked_at_ms=int(revoked["N"]) if revoked else None,
        )

    def revoke(self, region: str, now_ms: int, ended_before_ms: int) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(region),
                UpdateExpression="SET revoked_at_ms = :now, #region = :region",
                ConditionExpression="attribute_not_exists(until_ms) OR until_ms < :ended",
                ExpressionAttributeNames={"#region": "region"},
                ExpressionAttributeValues={
                    ":now": {"N": str(now_ms)},
                    ":ended": {"N": str(ended_before_ms)},
                    ":region": {"S": region},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, region: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(region),
            UpdateExpression="REMOVE revoked_at_ms",
        )


class RegionFence:
    """One worker process's view of its region's lease (the rules: the module docstring).

    `renew()` is one renewal attempt; `start()` runs it every `renew_ms` on a daemon thread.
    `check()` is asked before every command-table write."""

    def __init__(
        self,
        quorum: Quorum,
        region: str,
        *,
        ttl_ms: int,
        renew_ms: int,
        margin_ms: int,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if not 0 < renew_ms < ttl_ms - margin_ms:
            raise ValueError(
                f"the fence needs 0 < renew ({renew_ms} ms) < ttl - margin "
                f"({ttl_ms} - {margin_ms} ms), or it lapses between renewals"
            )
        self.region = region
        self._quorum = quorum
        self._ttl_ms = ttl_ms
        self._renew_ms = renew_ms
        self._margin_ms = margin_ms
        self._now_ms = now_ms
        self._until_ms = 0
        self._revoked = False
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_revoked: list[Callable[[], None]] = []

    def when_revoked(self, callback: Callable[[], None]) -> None:
        """Call `callback` (once, from the renewal thread) when a renewal finds the lease
        revoked: the worker stops instead of re-reading shards it may never write."""
        self._on_revoked.append(callback)

    @property
    def revoked(self) -> bool:
        return self._revoked

    @property
    def until_ms(self) -> int:
        """The end of the last renewal that succeeded (0: none yet)."""
        return self._until_ms

    def renew(self) -> bool:
        """One renewal: True if the quorum took it. The new end is computed from the time
        *before* the call, so this process never believes in more lease than the quorum has."""
        if self._revoked:
            return False
        until = self._now_ms() + self._ttl_ms
        try:
            self._quorum.renew(self.region, until)
        except FenceRevokedError:
            self._revoked = True
            log.error("region %s is fenced: a failover revoked its lease", self.region)
            for callback in self._on_revoked:
                callback()
            return False
        except Exception as exc:  # any failure: the quorum did not take it
            self._failures += 1
            log.warning(
                "fence renewal failed (%d in a row; lease ends in %d ms): %s",
                self._failures,
                self._until_ms - self._now_ms(),
                describe_error(exc),
            )
            return False
        self._failures = 0
        self._until_ms = max(self._until_ms, until)
        return True

    def holds(self) -> bool:
        """True while a write started now lands inside the lease."""
        return not self._revoked and self._now_ms() + self._margin_ms < self._until_ms

    def check(self, operation: str) -> None:
        """Raise unless a command-table write may start now (see the module docstring)."""
        if self._revoked:
            raise FenceRevokedError(f"region {self.region} is fenced: a failover revoked it")
        if not self.holds():
            raise ClientError(
                {
                    "Error": {
                        "Code": FENCED_CODE,
                        "Message": f"region {self.region} cannot prove its lease "
                        f"(it ended or ends within {self._margin_ms} ms)",
                    },
                    "ResponseMetadata": {
                        "HTTPStatusCode": 503,
                        "RequestId": "",
                        "HostId": "",
                        "HTTPHeaders": {},
                        "RetryAttempts": 0,
                    },
                },
                operation,
            )

    def start(self) -> None:
        """Renew every `renew_ms` on a daemon thread until `close()`."""
        self._thread = threading.Thread(target=self._run, name="region fence", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._renew_ms / 1000):
            self.renew()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


_WRITES: Final = ("put_item", "update_item", "delete_item")


class FencedDynamoDB:
    """A DynamoDB client whose writes to `tables` pass `fence.check()` first; reads, and
    writes to other tables, pass through unchanged."""

    def __init__(self, client: Any, fence: RegionFence, tables: Iterable[str]) -> None:
        self._client = client
        self._fence = fence
        self._tables = frozenset(tables)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in _WRITES:
            return attr

        def fenced_write(**kwargs: Any) -> Any:
            if kwargs.get("TableName") in self._tables:
                self._fence.check(name)
            return attr(**kwargs)

        return fenced_write

    def batch_write_item(self, **kwargs: Any) -> Any:
        if self._tables.intersection(kwargs.get("RequestItems", {})):
            self._fence.check("BatchWriteItem")
        return self._client.batch_write_item(**kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self._tables.intersection(_transact_tables(kwargs.get("TransactItems", []))):
            self._fence.check("TransactWriteItems")
        return self._client.transact_write_items(**kwargs)


def _transact_tables(items: Iterable[Mapping[str, Any]]) -> set[str]:
    return {
        action.get("TableName", "")
        for item in items
        for action in item.values()
        if isinstance(action, Mapping)
    }


def revoke_when_ended(
    quorum: Quorum,
    region: str,
    *,
    clock_skew_ms: int,
    now_ms: Callable[[], int] = wall_clock_ms,
    sleep_s: Callable[[float], None] = time.sleep,
    waiting: Callable[[int], None] = lambda _ms: None,
) -> int:
    """Revoke `region`'s lease once it has ended `clock_skew_ms` ago by this clock, waiting
    for that if needed (`waiting(ms_left)` is told before each wait); returns the ms waited.
    After it returns, no command-table write of `region` can land (module docstring)."""
    started = now_ms()
    while True:
        now = now_ms()
        if quorum.revoke(region, now, now - clock_skew_ms):
            return now - started
        lease = quorum.read(region)
        left = (lease.until_ms if lease else now) + clock_skew_ms - now + 1
        waiting(left)
        sleep_s(max(left, 50) / 1000)
