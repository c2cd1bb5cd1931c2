"""`luxflow status` (per shard: owner, checkpoint, lag, checkpoint age, dead letters) and
`luxflow health` (the container health check: exit 0 when this worker's /readyz says ready)."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request

import msgspec

from cli.base import SubParsers, info, plural
from core.clock import wall_clock_ms
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.status import ShardRow, shard_rows


def register(sub: SubParsers) -> None:
    status = sub.add_parser(
        "status", help="per shard: lease owner, checkpoint, lag, checkpoint age, dead letters"
    )
    status.add_argument("--json", action="store_true", help="one JSON array on stdout")
    status.set_defaults(run=cmd_status)

    health = sub.add_parser(
        "health", help="exit 0 if this host's worker is ready (/readyz), else 1 (HEALTHCHECK)"
    )
    health.add_argument(
        "--url",
        default="",
        help="readiness URL (default http://127.0.0.1:<LUXFLOW_HEALTH_PORT>/readyz)",
    )
    health.add_argument("--timeout-s", type=float, default=3.0, help="give up after this long")
    health.set_defaults(run=cmd_health)


def _ms(value: int | None) -> str:
    if value is None:
        return "-"
    if value < 120_000:
        return f"{value / 1000:.1f}s"
    if value < 7_200_000:
        return f"{value / 60_000:.1f}m"
    return f"{value / 3_600_000:.1f}h"


def format_rows(rows: list[ShardRow]) -> str:
    header = ("shard", "owner", "checkpoint", "lag", "ckpt age", "dead/1h")
    table = [header]
    for row in rows:
        checkpoint = row.checkpoint if len(row.checkpoint) <= 22 else "…" + row.checkpoint[-21:]
        age = _ms(row.last_checkpoint_age_ms)
        if row.last_checkpoint_age_ms is not None and not row.snapshot_at_checkpoint:
            age += "*"
        table.append(
            (
                row.shard_id,
                row.owner or "-",
                checkpoint,
                _ms(row.lag_ms),
                age,
                str(row.dead_letters_last_hour),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(line.rstrip() for line in lines)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    rows = shard_rows(settings, Clients(settings), wall_clock_ms())
    if args.json:
        print(msgspec.json.encode(rows).decode())
        return 0
    print(format_rows(rows))
    if any(r.last_checkpoint_age_ms is not None and not r.snapshot_at_checkpoint for r in rows):
        info("* the last state snapshot is not at the checkpoint's position")
    info(f"{plural(len(rows), 'shard')} of {settings.stream} ({settings.app_name})")
    if not rows:
        info(
            f"the lease table {settings.app_name} lists no shard: no worker has started on this "
            "stream yet (`luxflow worker`), or LUXFLOW_APP_NAME names another application"
        )
    return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    url = args.url or f"http://127.0.0.1:{settings.health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout_s) as response:
            body = response.read().decode(errors="replace").strip()
            print(body)
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace").strip())
        return 1
    except (urllib.error.URLError, OSError) as exc:
        info(f"not ready: {url}: {exc}")
        return 1
