"""Resetting a deployment's checkpoints so every shard is read again from the start of the
stream (or a timestamp). Workers must be stopped: a live worker would keep its old position."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.errors import ReplayRefusedError
from core.records import AT_TIMESTAMP, TRIM_HORIZON
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
