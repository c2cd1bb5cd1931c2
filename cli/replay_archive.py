"""`luxflow replay --archive s3://BUCKET/PREFIX`: replay the raw-record archive in this process,
through the engines a replay from the stream uses (`streams.kinesis.archive_replay`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from cli.base import info
from cli.replay_run import QUIET_AFTER_IDLE_MS
from core.retry import Backoff
from lighting.clients import Clients
from lighting.settings import Settings, parse_time_ms
from lighting.worker import shard_engines, worker_views
from sinks.deadletter import DeadLetterSink
from streams.kinesis.archive_reader import ShardOrder, list_objects, parse_s3_url
from streams.kinesis.archive_replay import ArchiveReplay
from streams.kinesis.leases import LeaseTable
from streams.kinesis.replay import live_leases
from tables.dynamodb import DynamoDBStateStore


def cmd_replay_archive(
    args: argparse.Namespace, settings: Settings, confirm: Callable[[str], None], rewrites: str
) -> int:
    clients = Clients(settings)
    bucket, prefix = parse_s3_url(args.archive)
    from_ms = None if args.from_ in (None, "trim-horizon") else parse_time_ms(args.from_)
    to_ms = None if args.to is None else parse_time_ms(args.to)
    objects = list_objects(clients.s3, bucket, prefix, from_ms=from_ms, to_ms=to_ms)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    if any(lease.owner is not None for lease in leases.list().values()):
        info(
            f"leases have an owner; checking for {settings.failover_ms / 1000:.0f}s "
            "that none is alive"
        )
        live_leases(leases, settings.failover_ms)
    size_mb = sum(o.size for o in objects) / 1e6
    confirm(
        f"this reads {len(objects)} archive objects ({size_mb:,.1f} MB) under {args.archive} "
        f"through {settings.app_name} and deletes the stored state first (the stream's "
        f"checkpoints are not moved); {rewrites}"
    )
    DynamoDBStateStore(clients.dynamodb, settings.state_table).delete_all()
    print(f"state deleted; reading {len(objects)} archive objects.", flush=True)

    def read_object(key: str) -> bytes:
        body: bytes = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    started = time.monotonic()
    with worker_views(settings, clients) as views:
        replay = ArchiveReplay(
            objects,
            read_object,
            shard_engines(settings, clients, views, bounded=True),
            DeadLetterSink(clients.dynamodb, settings.dead_letter_table, Backoff()),
            order=ShardOrder(from_ms, to_ms),
            quiet_ms=settings.idle_timeout_ms + QUIET_AFTER_IDLE_MS,
            poll_s=settings.poll_interval_ms / 1000,
            progress=info,
            progress_s=args.progress_s,
        )
        progress = replay.run()
    elapsed_s = max(time.monotonic() - started, 1e-9)
    counters = progress.counters.values()
    info(progress.line(time.monotonic()))
    info(
        f"luxflow replay: {progress.records} records read from the archive in {elapsed_s:.1f} s "
        f"({progress.records / elapsed_s:,.0f} records/s), "
        f"{sum(c.outputs for c in counters)} outputs, {len(progress.counters)} shards, "
        f"{progress.bad_lines} archive lines and {progress.out_of_order} records out of "
        "order dead-lettered, "
        f"{replay.repeated} records repeated by the archive skipped"
    )
    unhealthy = [e.shard_id for e in replay.engines.values() if not e.health.healthy]
    return 1 if unhealthy else 0
