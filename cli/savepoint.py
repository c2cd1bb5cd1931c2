"""`luxflow savepoint create|list|show|prune|run`: record every shard's state and position,
on demand or on a schedule, and look at what is kept (what a savepoint is: tables.savepoints).
"""

from __future__ import annotations

import argparse
import json
import threading

from cli.base import SubParsers, info
from core.clock import wall_clock_ms
from domain.timestamps import format_ts
from lighting.clients import Clients
from lighting.settings import Settings
from streams.kinesis.leases import LeaseTable
from streams.kinesis.savepoint import take_savepoint
from tables.dynamodb import DynamoDBStateStore
from tables.savepoints import Savepoint, SavepointStore


def register(sub: SubParsers) -> None:
    savepoint = sub.add_parser(
        "savepoint", help="record every shard's state and position, to replay from later"
    )
    verbs = savepoint.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser(
        "create", help="take a savepoint now (workers may run: each shard's last saved state)"
    )
    create.set_defaults(run=cmd_create)
    listing = verbs.add_parser("list", help="the savepoints kept, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON array on stdout")
    listing.set_defaults(run=cmd_list)
    show = verbs.add_parser("show", help="one savepoint: every shard's position and state size")
    show.add_argument("id", help="the savepoint id (`luxflow savepoint list`)")
    show.add_argument("--json", action="store_true", help="one JSON object on stdout")
    show.set_defaults(run=cmd_show)
    prune = verbs.add_parser("prune", help="delete savepoints past LUXFLOW_SAVEPOINT_RETENTION_MS")
    prune.set_defaults(run=cmd_prune)
    run = verbs.add_parser(
        "run", help="take a savepoint every LUXFLOW_SAVEPOINT_INTERVAL_MS until stopped"
    )
    run.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    run.set_defaults(run=cmd_run)


def _stores(settings: Settings) -> tuple[LeaseTable, DynamoDBStateStore, SavepointStore]:
    clients = Clients(settings)
    return (
        LeaseTable(clients.dynamodb, settings.app_name),
        DynamoDBStateStore(clients.dynamodb, settings.state_table),
        SavepointStore(clients.dynamodb, settings.state_table),
    )


def _take(settings: Settings, reason: str) -> Savepoint:
    leases, state, savepoints = _stores(settings)
    now_ms = wall_clock_ms()
    savepoint = take_savepoint(
        leases,
        state,
        savepoints,
        now_ms=now_ms,
        retention_ms=settings.savepoint_retention_ms,
        reason=reason,
    )
    for expired in savepoints.prune(now_ms):
        info(f"savepoint {expired} expired: deleted")
    return savepoint


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    savepoint = _take(settings, "on demand")
    print(savepoint.id)
    info(
        f"savepoint {savepoint.id}: {len(savepoint.shards)} shards, {savepoint.size} bytes of "
        f"state, kept until {format_ts(savepoint.expires_at_ms)}"
    )
    return 0


def _summary(savepoint: Savepoint) -> dict[str, object]:
    return {
        "id": savepoint.id,
        "created_at": format_ts(savepoint.created_at_ms),
        "expires_at": format_ts(savepoint.expires_at_ms),
        "shards": len(savepoint.shards),
        "state_bytes": savepoint.size,
        "reason": savepoint.reason,
    }


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [_summary(sp) for sp in _stores(settings)[2].all()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':<32} {'created at':<25} {'expires at':<25} {'shards':>6} {'state bytes':>12}")
    for row in rows:
        print(
            f"{row['id']!s:<32} {row['created_at']!s:<25} {row['expires_at']!s:<25} "
            f"{row['shards']!s:>6} {row['state_bytes']!s:>12}"
        )
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    savepoint = _stores(settings)[2].get(args.id)
    shards = [
        {
            "shard_id": shard.shard_id,
            "reads_after": str(shard.start),
            "state_blobs": shard.blobs,
            "state_bytes": shard.size,
            "state_saved_at": format_ts(shard.saved_at_ms) if shard.blobs else None,
            "final": shard.final,
            "parents": list(shard.parent_ids),
        }
        for shard in savepoint.shards
    ]
    if args.json:
        print(json.dumps({**_summary(savepoint), "shard_records": shards}))
        return 0
    for key, value in _summary(savepoint).items():
        print(f"{key + ':':<13}{value}")
    print(f"{'shard':<24} {'reads after':<62} {'blobs':>5} {'bytes':>10} state saved at")
    for row in shards:
        print(
            f"{row['shard_id']!s:<24} {row['reads_after']!s:<62} {row['state_blobs']!s:>5} "
            f"{row['state_bytes']!s:>10} {row['state_saved_at'] or '-'}"
        )
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    expired = _stores(settings)[2].prune(wall_clock_ms())
    print(f"{len(expired)} savepoints deleted")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """The schedule: one savepoint now, then one every interval (a sidecar or scheduled task;
    savepoints read only the tables, so it need not run beside any particular worker)."""
    stop = threading.Event()
    taken = 0
    try:
        while not stop.is_set():
            savepoint = _take(settings, "scheduled")
            taken += 1
            info(f"savepoint {savepoint.id}: {len(savepoint.shards)} shards")
            if args.count and taken >= args.count:
                break
            stop.wait(settings.savepoint_interval_ms / 1000)
    except KeyboardInterrupt:
        pass
    return 0
