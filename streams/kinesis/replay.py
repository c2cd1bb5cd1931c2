"""Resetting a deployment's checkpoints so every shard is read again from the start of the
stream (or a timestamp). Workers must be stopped: a live worker would keep its old position.

A replay from a time keeps every lease (its key, hash range, parents and counter) and moves
its checkpoint to the AT_TIMESTAMP sentinel with the time in `luxflowAtTimestampMs`. The local
runner reads that attribute; the KCL daemon reads the time from its configuration only, so
the KCL runner is started with `kcl_start_position` of the lease table. The first checkpoint
of a shard replaces the sentinel (and removes the attribute), after which the time no longer
matters for that shard. AT_TIMESTAMP is the records' arrival time at the stream, not the
readings' event time; the daemon takes whole seconds, so a replay time is truncated to its
second for both runners to read the same records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from botocore.exceptions import ClientError

from core.errors import CheckpointError, ReplayRefusedError
from core.records import AT_TIMESTAMP, TRIM_HORIZON
from core.retry import error_code
from streams.kinesis.leases import Lease, LeaseTable


def live_leases(
    leases: LeaseTable, failover_ms: int, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Lease]:
    """The current leases, after checking that no worker renews any of them: leases with an
    owner are read again after `failover_ms`; a renewed one raises `ReplayRefusedError`."""
    current = leases.list()
    if not current:
        raise ReplayRefusedError(f"lease table {leases.table_name} has no leases: nothing to reset")
    owned = {k: v for k, v in current.items() if v.owner is not None}
    if not owned:
        return current
    sleep(failover_ms / 1000)
    later = leases.list()
    alive = sorted(k for k, v in owned.items() if k in later and later[k].counter != v.counter)
    if alive:
        raise ReplayRefusedError(
            f"workers are running (leases renewed: {', '.join(alive)}); stop them first"
        )
    return later


def reset_leases(leases: LeaseTable, current: dict[str, Lease], from_ms: int | None) -> None:
    """Release every lease and set its checkpoint to TRIM_HORIZON (`from_ms` None) or to
    AT_TIMESTAMP `from_ms`."""
    initial = TRIM_HORIZON if from_ms is None else AT_TIMESTAMP
    for lease in current.values():
        unowned = leases.release(lease) if lease.owner is not None else lease
        leases.reset(unowned, initial, from_ms)


def replay_from_ms(time_ms: int) -> int:
    """A replay time as both runners can honour it: truncated to its second."""
    return time_ms - time_ms % 1000


def leases_if_any(leases: LeaseTable) -> list[Lease]:
    """The leases, or none when the lease table does not exist yet (a first start)."""
    try:
        return list(leases.list().values())
    except CheckpointError as exc:
        if isinstance(exc.__cause__, ClientError) and (
            error_code(exc.__cause__) == "ResourceNotFoundException"
        ):
            return []
        raise


def kcl_start_position(
    leases: Iterable[Lease], initial_position: str, at_timestamp_ms: int | None
) -> tuple[str, int | None]:
    """The KCL daemon's initial position: AT_TIMESTAMP at the earliest replay time of the
    leases still waiting at the AT_TIMESTAMP sentinel, else the configured one (its timestamp
    truncated to the second)."""
    pending = [
        lease.at_timestamp_ms
        for lease in leases
        if lease.checkpoint == AT_TIMESTAMP and lease.at_timestamp_ms is not None
    ]
    if pending:
        return AT_TIMESTAMP, replay_from_ms(min(pending))
    if initial_position == AT_TIMESTAMP and at_timestamp_ms is not None:
        return AT_TIMESTAMP, replay_from_ms(at_timestamp_ms)
    return initial_position, None
