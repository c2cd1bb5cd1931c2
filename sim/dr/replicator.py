"""A model of DynamoDB global tables (MREC) between two emulated regions, for one-machine tests.

No local emulator replicates (moto takes `UpdateTable ReplicaUpdates` as a no-op), so this
models what MREC does, hazards included:

- **Write timestamps.** DynamoDB stamps every write with the time it was accepted in the
  region that took it; applications never see the stamp. `StampingDynamoDB` wraps a region's
  client and adds it as two attributes, `_ts` (ms) and `_origin` (region), to every put on a
  global table. The application's own conditions are untouched and run on the local table,
  which is all MREC checks.
- **Asynchronous, with lag.** `Replicator` captures each region's local writes (a scan for
  items with `_origin` = that region and `_ts` above a cursor, every `poll_ms`) and applies
  each to the other region `lag_ms` after its write timestamp. The application never waits
  for it.
- **Last writer wins by write timestamp.** A replicated write is applied only if the other
  replica holds no item with that key, or one with an older write timestamp (equal stamps:
  the greater region name wins, so both replicas pick the same). A newer local write is never
  replaced by an older remote one; nothing is reported to the application (counted here).
- **Partitions and loss.** `cut()` stops delivery both ways (captured writes queue up);
  `heal()` resumes it. `lose(region)` models a region lost with everything it had not yet
  delivered: its queue is dropped and its later writes are never captured.

Not modelled: deletes (luxflow never deletes from the command table, so there is no tombstone
to replicate) and the intermediate versions of an item written twice between two scans (MREC
may coalesce them too: only the last one can win).
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from core.clock import Clock, wall_clock_ms
from core.retry import error_code

log = logging.getLogger(__name__)

TS: Final = "_ts"
ORIGIN: Final = "_origin"
CAPTURE_MARGIN_MS: Final = 2_000
"""A write stamped just before a scan may become visible just after it: rescan this far back."""


def stamp(item: dict[str, Any], ts_ms: int, region: str) -> dict[str, Any]:
    return {**item, TS: {"N": str(ts_ms)}, ORIGIN: {"S": region}}


class StampingDynamoDB:
    """A region's DynamoDB client, as the application sees it, that records write timestamps
    on the global tables the way the service does (see the module docstring). Every other
    call and table passes through unchanged."""

    def __init__(
        self, client: Any, region: str, global_tables: Iterable[str], clock: Clock = wall_clock_ms
    ) -> None:
        self._client = client
        self.region = region
        self._global = frozenset(global_tables)
        self._clock = clock

    def put_item(self, **kwargs: Any) -> Any:
        if kwargs["TableName"] in self._global:
            kwargs["Item"] = stamp(kwargs["Item"], self._clock(), self.region)
        return self._client.put_item(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        requests: dict[str, list[dict[str, Any]]] = {}
        for table, writes in kwargs["RequestItems"].items():
            if table not in self._global:
                requests[table] = writes
                continue
            now_ms = self._clock()
            stamped = []
            for write in writes:
                if "DeleteRequest" in write:
                    raise NotImplementedError("the MREC model does not replicate deletes")
                item = write["PutRequest"]["Item"]
                stamped.append({"PutRequest": {"Item": stamp(item, now_ms, self.region)}})
            requests[table] = stamped
        return self._client.batch_write_item(**{**kwargs, "RequestItems": requests})

    def update_item(self, **kwargs: Any) -> Any:
        if kwargs["TableName"] in self._global:
            raise NotImplementedError("the MREC model stamps puts only; luxflow never updates")
        return self._client.update_item(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        if kwargs["TableName"] in self._global:
            raise NotImplementedError("the MREC model does not replicate deletes")
        return self._client.delete_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class Replica:
    """One region's replica of one global table, reached with a plain (non-stamping) client."""

    region: str
    client: Any
    table: str
    key_fields: tuple[str, ...] = ("pk", "sk")


@dataclass
class ReplicationCounters:
    captured: int = 0
    applied: int = 0
    superseded: int = 0
    """Replicated writes that lost to a newer write already in the other replica."""
    dropped: int = 0
    """Captured writes never delivered: their region was lost first."""


@dataclass(order=True)
class _Pending:
    due_ms: int
    ts_ms: int
    key: tuple[str, ...] = field(compare=False)
    item: dict[str, Any] = field(compare=False)


class _Direction:
    """Writes of `source` on their way to `target`."""

    def __init__(self, source: Replica, target: Replica) -> None:
        self.source = source
        self.target = target
        self.queue: list[_Pending] = []
        self.seen: dict[tuple[str, ...], int] = {}  # key -> newest write stamp captured
        self.cursor_ms = 0
        self.lost = False


class Replicator:
    """Replicates one global table between two regions (see the module docstring).

    `start()` runs it in a daemon thread until `stop()`; `step()` does one capture and
    delivery pass (the thread calls it every `poll_ms`)."""

    def __init__(
        self,
        a: Replica,
        b: Replica,
        *,
        lag_ms: int,
        poll_ms: int = 100,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.lag_ms = lag_ms
        self.counters = ReplicationCounters()
        self._poll_ms = poll_ms
        self._clock = clock
        self._directions = (_Direction(a, b), _Direction(b, a))
        self._partitioned = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # -- control -------------------------------------------------------------------------

    def start(self) -> Replicator:
        self._thread = threading.Thread(target=self._run, name="mrec-replicator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def cut(self) -> None:
        """A network partition: nothing is delivered either way until `heal()`."""
        with self._lock:
            self._partitioned = True

    def heal(self) -> None:
        with self._lock:
            self._partitioned = False

    def lose(self, region: str) -> int:
        """`region` is gone: what it captured but had not delivered is dropped, and nothing it
        writes from now on leaves it. Returns how many captured writes were dropped."""
        with self._lock:
            dropped = 0
            for direction in self._directions:
                if direction.source.region == region:
                    direction.lost = True
                    dropped += len(direction.queue)
                    direction.queue.clear()
            self.counters.dropped += dropped
            return dropped

    def pending(self) -> int:
        """Captured writes not delivered yet."""
        with self._lock:
            return sum(len(d.queue) for d in self._directions)

    def settle(self, timeout_s: float = 60.0) -> bool:
        """Wait until two capture passes after the last write found nothing new and every
        captured write was delivered (or dropped). False on timeout or while partitioned."""
        deadline_ms = self._clock() + int(timeout_s * 1000)
        quiet_passes = 0
        while self._clock() < deadline_ms:
            captured = self.counters.captured
            self._stop.wait(max(self._poll_ms, self.lag_ms) / 1000 + 0.2)
            if self.pending() == 0 and captured == self.counters.captured:
                quiet_passes += 1
                if quiet_passes >= 2:
                    return True
            else:
                quiet_passes = 0
        return False

    # -- work ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the model must not die silently; tests read errors
                log.exception("replicator pass failed")
                self.errors.append(repr(exc))
            self._stop.wait(self._poll_ms / 1000)

    def step(self) -> None:
        for direction in self._directions:
            if not direction.lost:
                self._capture(direction)
        with self._lock:
            if self._partitioned:
                return
        now_ms = self._clock()
        for direction in self._directions:
            self._deliver(direction, now_ms)

    def _capture(self, direction: _Direction) -> None:
        source = direction.source
        since_ms = max(0, direction.cursor_ms - CAPTURE_MARGIN_MS)
        kwargs: dict[str, Any] = {
            "TableName": source.table,
            # Unstamped items were written by a client this model does not wrap (the
            # `luxflow` CLI in a child process): stamped here, at most `poll_ms` late.
            "FilterExpression": "(#origin = :me AND #ts > :since) OR attribute_not_exists(#ts)",
            "ExpressionAttributeNames": {"#origin": ORIGIN, "#ts": TS},
            "ExpressionAttributeValues": {
                ":me": {"S": source.region},
                ":since": {"N": str(since_ms)},
            },
            "ConsistentRead": True,
        }
        found: list[_Pending] = []
        while True:
            page = source.client.scan(**kwargs)
            for raw in page["Items"]:
                item = raw if TS in raw else self._stamp_at_capture(source, raw)
                ts_ms = int(item[TS]["N"])
                key = tuple(item[name]["S"] for name in source.key_fields)
                if direction.seen.get(key, -1) >= ts_ms:
                    continue
                direction.seen[key] = ts_ms
                found.append(_Pending(ts_ms + self.lag_ms, ts_ms, key, item))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        with self._lock:
            if direction.lost:
                return
            for pending in found:
                heapq.heappush(direction.queue, pending)
                direction.cursor_ms = max(direction.cursor_ms, pending.ts_ms)
            self.counters.captured += len(found)

    def _stamp_at_capture(self, source: Replica, item: dict[str, Any]) -> dict[str, Any]:
        stamped = stamp(item, self._clock(), source.region)
        key = {name: item[name] for name in source.key_fields}
        try:
            source.client.update_item(
                TableName=source.table,
                Key=key,
                UpdateExpression="SET #ts = :ts, #origin = :origin",
                ConditionExpression="attribute_not_exists(#ts)",
                ExpressionAttributeNames={"#ts": TS, "#origin": ORIGIN},
                ExpressionAttributeValues={":ts": stamped[TS], ":origin": stamped[ORIGIN]},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        return stamped

    def _deliver(self, direction: _Direction, now_ms: int) -> None:
        while True:
            with self._lock:
                if self._partitioned or not direction.queue or direction.queue[0].due_ms > now_ms:
                    return
                pending = heapq.heappop(direction.queue)
            self._apply(direction.target, pending.item)

    def _apply(self, target: Replica, item: dict[str, Any]) -> None:
        """Last writer wins: put unless the target holds a newer (or equal, from a greater
        region) write of the same key."""
        try:
            target.client.put_item(
                TableName=target.table,
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(#key) OR #ts < :ts OR (#ts = :ts AND #origin < :origin)"
                ),
                ExpressionAttributeNames={
                    "#key": target.key_fields[0],
                    "#ts": TS,
                    "#origin": ORIGIN,
                },
                ExpressionAttributeValues={":ts": item[TS], ":origin": item[ORIGIN]},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            self.counters.superseded += 1
        else:
            self.counters.applied += 1


def unreplicated(source: Iterable[dict[str, Any]], target: Iterable[dict[str, Any]]) -> list[Any]:
    """Keys of items (plain values, with `_ts`) whose write in `source` is not in `target`:
    absent there, or there only in an older version. What a region lost at this moment takes
    with it (its RPO, in items)."""
    held = {(i["pk"], i["sk"]): int(i.get(TS, 0)) for i in target}
    return sorted(
        (i["pk"], i["sk"]) for i in source if held.get((i["pk"], i["sk"]), -1) < int(i.get(TS, 0))
    )
