"""Taking a savepoint from the lease and state tables, and restoring one before a replay.

What a savepoint holds and why it is consistent is in `tables.savepoints`. Here:

- `take_savepoint` reads the leases, then each shard's snapshot head and chain (consistent
  reads). It may run while workers run: a shard's record is the (state, position) pair of its
  last completed save, whatever the other shards are doing. A save that replaces the chain
  between the head read and the chunk reads makes that read fail its checksum; it is read
  again (a newer completed save), a few times at most.
- `restore_savepoint` (workers stopped, leases unowned) puts every shard's chain back in the
  state table and moves its lease to the recorded position. Leases of shards the savepoint
  does not know (children of a later split or merge) go back to TRIM_HORIZON with no state:
  they wait for their parents, which are replayed from the savepoint. Shards the savepoint
  knows but whose lease is gone get their lease back from the recorded lineage.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from core.errors import StateStoreError
from core.records import AT_TIMESTAMP, SHARD_END, Position
from streams.kinesis.leases import Lease, LeaseTable
from tables.dynamodb import DynamoDBStateStore
from tables.savepoints import Savepoint, SavepointStore, ShardSavepoint, new_id
from tables.store import Snapshot, StoredState

log = logging.getLogger(__name__)

READ_ATTEMPTS = 5


def take_savepoint(
    leases: LeaseTable,
    state: DynamoDBStateStore,
    savepoints: SavepointStore,
    *,
    now_ms: int,
    retention_ms: int,
    reason: str = "on demand",
) -> Savepoint:
    """Record every shard of the lease table and store the savepoint; returns it."""
    shards: list[ShardSavepoint] = []
    blobs: dict[str, tuple[bytes, ...]] = {}
    for shard_id, lease in sorted(leases.list().items()):
        stored = _load(state, shard_id)
        record = shard_record(lease, stored)
        shards.append(record)
        if stored is not None and record.blobs:
            blobs[shard_id] = stored.blobs
    savepoint = Savepoint(
        id=new_id(now_ms),
        created_at_ms=now_ms,
        expires_at_ms=now_ms + retention_ms,
        shards=tuple(shards),
        reason=reason,
    )
    savepoints.write(savepoint, blobs)
    return savepoint


def shard_record(lease: Lease, stored: StoredState | None) -> ShardSavepoint:
    """A shard's savepoint record: its snapshot and the position the snapshot includes. The
    lease's checkpoint is used only when there is no snapshot, or the shard ended (SHARD_END
    is where its children take over; the final snapshot goes with it)."""
    if stored is None or (stored.position is None and lease.checkpoint != SHARD_END):
        checkpoint, sub = ShardSavepoint.checkpoint_fields(lease.checkpoint)
        return ShardSavepoint(
            lease.shard_id,
            checkpoint=checkpoint,
            sub_sequence_number=sub,
            blobs=0,
            parent_ids=lease.parent_ids,
            hash_keys=ShardSavepoint.keys_of(lease.hash_range),
            at_timestamp_ms=lease.at_timestamp_ms if lease.checkpoint == AT_TIMESTAMP else None,
        )
    start: Position | str = SHARD_END
    if lease.checkpoint != SHARD_END and stored.position is not None:
        start = stored.position
    checkpoint, sub = ShardSavepoint.checkpoint_fields(start)
    chain = stored.blobs
    return ShardSavepoint(
        lease.shard_id,
        checkpoint=checkpoint,
        sub_sequence_number=sub,
        blobs=len(chain),
        saved_at_ms=stored.saved_at_ms,
        final=stored.final,
        parent_ids=lease.parent_ids,
        hash_keys=ShardSavepoint.keys_of(lease.hash_range),
        sha256=tuple(hashlib.sha256(blob).hexdigest() for blob in chain),
        size=sum(len(blob) for blob in chain),
    )


def restore_savepoint(
    savepoint: Savepoint,
    savepoints: SavepointStore,
    leases: LeaseTable,
    current: dict[str, Lease],
    state: DynamoDBStateStore,
    *,
    progress: Callable[[str], None] = lambda _line: None,
) -> None:
    """Put `savepoint` back (see the module docstring). `current`: the leases, checked
    unowned-or-dead by `replay.live_leases`. Every chain is read and checked before anything
    is changed, so a corrupt savepoint leaves the deployment as it was."""
    chains = {
        shard.shard_id: savepoints.blobs(savepoint, shard)
        for shard in savepoint.shards
        if shard.blobs
    }
    state.delete_all()
    recorded = {shard.shard_id: shard for shard in savepoint.shards}
    for shard in savepoint.shards:
        chain = chains.get(shard.shard_id, ())
        # An ended shard's final snapshot is found by its children through their lineage, not
        # by its position, and the shard is never read again: it goes back without one.
        position = shard.start if isinstance(shard.start, Position) else None
        for number, blob in enumerate(chain):
            state.save(
                shard.shard_id,
                Snapshot(
                    shard_id=shard.shard_id,
                    position=position,
                    saved_at_ms=shard.saved_at_ms,
                    data=blob,
                    final=shard.final and number == len(chain) - 1,
                    delta=number > 0,
                ),
            )
        lease = current.get(shard.shard_id)
        if lease is None:
            if shard.hash_range is None:
                raise StateStoreError(
                    f"savepoint {savepoint.id}: shard {shard.shard_id} has no lease and no "
                    "recorded hash range"
                )
            leases.create_if_missing(
                shard.shard_id, shard.parent_ids, shard.hash_range, shard.checkpoint
            )
            lease = leases.get(shard.shard_id)
            assert lease is not None
        unowned = leases.release(lease) if lease.owner is not None else lease
        leases.reset(unowned, shard.start, shard.at_timestamp_ms)
        progress(f"{shard.shard_id}: state of {shard.blobs} blobs, reading after {shard.start}")
    for shard_id, lease in sorted(current.items()):
        if shard_id in recorded:
            continue
        unowned = leases.release(lease) if lease.owner is not None else lease
        leases.reset(unowned, "TRIM_HORIZON", None)
        progress(f"{shard_id}: not in the savepoint (a later shard): from its start, no state")


def _load(state: DynamoDBStateStore, shard_id: str) -> StoredState | None:
    for attempt in range(READ_ATTEMPTS):
        try:
            return state.load(shard_id)
        except StateStoreError as exc:
            if attempt + 1 == READ_ATTEMPTS:
                raise
            log.info("shard %s: snapshot changed while read, reading again: %s", shard_id, exc)
    return None
