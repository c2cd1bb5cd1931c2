"""`luxflow replay`: read the stream again from the start (or a time) with fresh state."""

from __future__ import annotations

import argparse

from cli.base import SubParsers, info
from core.errors import ReplayRefusedError
from lighting.clients import Clients
from lighting.settings import Settings, parse_time_ms
from streams.kinesis.leases import LeaseTable
from streams.kinesis.replay import live_leases, reset_leases
from tables.dynamodb import DynamoDBStateStore


def register(sub: SubParsers) -> None:
    replay = sub.add_parser("replay", help="reset every checkpoint and the state (workers stopped)")
    replay.add_argument(
        "--from",
        dest="from_",
        required=True,
        help="trim-horizon, or an ISO-8601 UTC time such as 2026-11-27T13:00:00Z",
    )
    replay.add_argument("--yes", action="store_true", help="do it (otherwise only explain)")
    replay.set_defaults(run=cmd_replay)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    clients = Clients(settings)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    from_ms = None if args.from_ == "trim-horizon" else parse_time_ms(args.from_)
    if any(lease.owner is not None for lease in leases.list().values()):
        info(
            f"leases have an owner; checking for {settings.failover_ms / 1000:.0f}s "
            "that none is alive"
        )
    current = live_leases(leases, settings.failover_ms)
    if not args.yes:
        raise ReplayRefusedError(
            f"this resets {len(current)} shard checkpoints of {settings.app_name} to "
            f"{args.from_} and deletes the stored state; run again with --yes"
        )
    reset_leases(leases, current, from_ms)
    DynamoDBStateStore(clients.dynamodb, settings.state_table).delete_all()
    print(f"reset {len(current)} shards to {args.from_}; state deleted. Start the workers.")
    return 0
