"""`luxflow replay`: read the stream again, from its start or an arrival time with fresh
state, or from a savepoint with the state it recorded. Registers `luxflow savepoint` too."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cli import replay_run
from cli import savepoint as savepoint_cli
from cli.base import SubParsers, info
from cli.replay_archive import cmd_replay_archive
from core.errors import ConfigError, ReplayRefusedError
from domain.timestamps import format_ts
from lighting.clients import Clients
from lighting.settings import Settings, parse_time_ms
from streams.kinesis.leases import LeaseTable
from streams.kinesis.replay import live_leases, replay_from_ms, reset_leases
from streams.kinesis.savepoint import restore_savepoint
from tables.dynamodb import DynamoDBStateStore
from tables.savepoints import Savepoint, SavepointStore

REWRITES = (
    "command-model items (DynamoDB) and query-model points (Timestream or InfluxDB) of the "
    "records read again are written again"
)


def register(sub: SubParsers) -> None:
    replay = sub.add_parser(
        "replay",
        help="move every checkpoint back (workers stopped); the workers then read again",
        description="Move every shard's checkpoint back so the workers read the stream again. "
        "Stop the workers first; start them afterwards. " + REWRITES + ".",
    )
    start = replay.add_mutually_exclusive_group()
    start.add_argument(
        "--from",
        dest="from_",
        metavar="TIME",
        help="trim-horizon (the oldest record the stream keeps), or an ISO-8601 UTC time such "
        "as 2026-11-27T13:00:00Z: records that ARRIVED at the stream at or after it (Kinesis "
        "AT_TIMESTAMP is arrival time, not the readings' event time: a gateway's upload of "
        "old readings arrives when it is sent), truncated to the second. The state is deleted.",
    )
    start.add_argument(
        "--savepoint",
        metavar="ID",
        help="restore a savepoint's state (learnt baselines, open faults) and read every "
        "shard from its recorded position (`luxflow savepoint list`)",
    )
    start.add_argument(
        "--at",
        metavar="TIME",
        help="like --savepoint, with the latest savepoint taken at or before this ISO-8601 time",
    )
    replay.add_argument(
        "--archive",
        metavar="S3_URL",
        help="read the raw-record archive instead of the stream (s3://BUCKET/raw/region=R/), "
        "beyond the stream's retention, in this process: the state is deleted, every record "
        "goes through the same engines in its shard's order, and "
        + REWRITES
        + "; the stream's checkpoints are not moved. With --from/--to: only records that "
        "ARRIVED at the stream in [--from, --to)",
    )
    replay.add_argument(
        "--to", metavar="TIME", help="with --archive: stop before records that arrived at TIME"
    )
    replay.add_argument("--yes", action="store_true", help="do not ask before rewriting")
    replay.add_argument(
        "--run",
        dest="run_now",
        action="store_true",
        help="then read in this process (the local runner) until every shard is caught up and "
        "quiet, printing progress; otherwise start the workers yourself",
    )
    replay.add_argument(
        "--progress-s",
        type=float,
        default=10.0,
        help="with --run or --archive: seconds between progress lines (records read, rate, "
        "time left: per shard from the distance to the tip, or from the archive bytes left)",
    )
    replay.set_defaults(run=cmd_replay)
    savepoint_cli.register(sub)


def confirm(
    question: str,
    *,
    yes: bool,
    interactive: bool,
    ask: Callable[[str], str] = input,
) -> None:
    """Go on with `--yes`, or when the user at a terminal answers y; otherwise raise
    `ReplayRefusedError` (one line: a script without --yes is refused, never left waiting)."""
    if yes:
        return
    if not interactive:
        raise ReplayRefusedError(f"{question}; stdin is not a terminal: run again with --yes")
    answer = ask(f"{question}. Go on? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ReplayRefusedError("replay cancelled: nothing was changed")


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.archive is not None:
        if args.savepoint is not None or args.at is not None:
            raise ConfigError("--archive starts from fresh state: not with --savepoint or --at")
        interactive = sys.stdin.isatty()
        return cmd_replay_archive(
            args,
            settings,
            lambda what: confirm(what, yes=args.yes, interactive=interactive),
            REWRITES,
        )
    if args.from_ is None and args.savepoint is None and args.at is None:
        raise ConfigError("one of --from, --savepoint, --at or --archive is required")
    if args.to is not None:
        raise ConfigError("--to is for --archive only")
    clients = Clients(settings)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    state = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    savepoints = SavepointStore(clients.dynamodb, settings.state_table)
    chosen: Savepoint | None = None
    if args.savepoint is not None:
        chosen = savepoints.get(args.savepoint)
    elif args.at is not None:
        chosen = savepoints.latest_at(parse_time_ms(args.at))
    from_ms = None
    if args.from_ is not None and args.from_ != "trim-horizon":
        from_ms = replay_from_ms(parse_time_ms(args.from_))
    if any(lease.owner is not None for lease in leases.list().values()):
        info(
            f"leases have an owner; checking for {settings.failover_ms / 1000:.0f}s "
            "that none is alive"
        )
    current = live_leases(leases, settings.failover_ms)
    if chosen is None:
        what = (
            f"this moves {len(current)} shard checkpoints of {settings.app_name} to "
            f"{args.from_} and deletes the stored state; {REWRITES}"
        )
    else:
        what = (
            f"this restores savepoint {chosen.id} (taken {format_ts(chosen.created_at_ms)}) "
            f"over {len(current)} shard checkpoints and the stored state of "
            f"{settings.app_name}; {REWRITES}"
        )
    confirm(what, yes=args.yes, interactive=sys.stdin.isatty())
    then = "Reading." if args.run_now else "Start the workers."
    if chosen is not None:
        restore_savepoint(chosen, savepoints, leases, current, state, progress=info)
        print(f"restored savepoint {chosen.id} on {len(chosen.shards)} shards. {then}", flush=True)
    else:
        reset_leases(leases, current, from_ms)
        state.delete_all()
        where = "trim-horizon" if from_ms is None else f"records arrived from {format_ts(from_ms)}"
        print(f"reset {len(current)} shards to {where}; state deleted. {then}", flush=True)
    if args.run_now:
        return replay_run.run_until_caught_up(settings, clients, progress_s=args.progress_s)
    return 0
