"""The `StateStore` protocol, the snapshot types it moves, and an in-memory store for tests.

Where snapshots sit in the checkpoint step: flush sinks -> `save`
the snapshot that includes every record up to `position` -> write the checkpoint. On start,
`load` gives the state (a base and its deltas) and the position it includes; records at or
below it are not applied again. The DynamoDB store is in `tables.dynamodb`.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from core.errors import LeaseLostError, StateStoreError
from core.records import LeaseFence, Position


class Snapshot(msgspec.Struct, frozen=True):
    """What one save writes: a shard's table state as of `position` (None: before any record
    of the shard).

    `data` is `ShardState.snapshot()`'s bytes: a base (every key) or, when `delta`, the keys
    changed since the previous saved snapshot. `final` marks the snapshot taken at
    SHARD_END, the one a split or merge child starts from.
    """

    shard_id: str
    position: Position | None
    saved_at_ms: int
    data: bytes
    final: bool = False
    delta: bool = False


class StoredState(msgspec.Struct, frozen=True):
    """What `load` gives: the last base and every delta saved after it, in order, with the
    position, time and `final` flag of the last save."""

    shard_id: str
    position: Position | None
    saved_at_ms: int
    base: bytes
    deltas: tuple[bytes, ...] = ()
    final: bool = False

    @property
    def blobs(self) -> tuple[bytes, ...]:
        """Base then deltas: the chain `ShardState.restore` takes."""
        return (self.base, *self.deltas)


def older(a: Position | None, b: Position | None) -> bool:
    """True when position `a` is strictly before `b` (None: before every record)."""
    if b is None:
        return False
    return a is None or a < b


class StateStore(Protocol):
    """Where shard snapshots live: per shard, one base followed by deltas. Contract:

    - `save(shard_id, snapshot, fence=None)`: a base replaces the shard's whole chain; a
      delta is appended to it (a delta without a stored base raises StateStoreError). The
      save becomes visible atomically: after it returns, `load` includes it; if it raises or
      the process dies inside it, `load` gives the previous chain, whole, never a part.
    - Fencing: a snapshot may only replace or extend one at an older or equal position, and
      with a `fence`, only while the fence's owner holds the lease at the fence's counter.
      Either refusal raises `LeaseLostError` (another worker owns the shard: stop, do not
      checkpoint); a transient or unknown failure raises `StateStoreError` (the checkpoint
      is aborted and may be retried). Neither changes what `load` gives.
    - `load(shard_id)` gives the base and ordered deltas of the last saves, or None.
    - `delete(shard_id)` forgets one shard; `delete_all()` forgets every shard (for replay).
    """

    def load(self, shard_id: str) -> StoredState | None: ...

    def save(self, shard_id: str, snapshot: Snapshot, fence: LeaseFence | None = None) -> None: ...

    def delete(self, shard_id: str) -> None: ...

    def delete_all(self) -> None: ...


class InMemoryStateStore:
    """A StateStore in a dict, for tests and `luxflow demo` without persistence.

    Fences are checked against `leases` (lease key -> (owner, counter)), which tests set;
    a fence whose lease key is not there passes. `bytes_written` counts snapshot bytes.
    """

    def __init__(self) -> None:
        self.chains: dict[str, list[Snapshot]] = {}
        self.leases: dict[str, tuple[str, int]] = {}
        self.saves = 0
        self.bytes_written = 0

    def load(self, shard_id: str) -> StoredState | None:
        chain = self.chains.get(shard_id)
        if not chain:
            return None
        last = chain[-1]
        return StoredState(
            shard_id,
            last.position,
            last.saved_at_ms,
            chain[0].data,
            tuple(s.data for s in chain[1:]),
            last.final,
        )

    def save(self, shard_id: str, snapshot: Snapshot, fence: LeaseFence | None = None) -> None:
        chain = self.chains.get(shard_id)
        held = self.leases.get(fence.shard_id) if fence is not None else None
        if (
            fence is not None
            and held is not None
            and (held[0] != fence.owner or held[1] < fence.counter)
        ):
            raise LeaseLostError(f"shard {shard_id}: lease not held by {fence.owner}")
        if chain and older(snapshot.position, chain[-1].position):
            raise LeaseLostError(f"shard {shard_id}: a snapshot at a later position is stored")
        if snapshot.delta:
            if not chain:
                raise StateStoreError(f"shard {shard_id}: a delta needs a stored base")
            chain.append(snapshot)
        else:
            self.chains[shard_id] = [snapshot]
        self.saves += 1
        self.bytes_written += len(snapshot.data)

    def delete(self, shard_id: str) -> None:
        self.chains.pop(shard_id, None)

    def delete_all(self) -> None:
        self.chains.clear()


__all__ = [
    "InMemoryStateStore",
    "Snapshot",
    "StateStore",
    "StoredState",
    "older",
]
