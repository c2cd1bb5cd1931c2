"""`luxflow worker` (local runner or KCL daemon); the processor the daemon starts per shard is
`cli.kcl_processor`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from cli.base import SubParsers, info, plural
from core.errors import LuxflowError
from core.retry import describe_error
from lighting.clients import Clients
from lighting.observe import Observability, registry_stats, status_dir
from lighting.settings import Settings
from lighting.worker import local_runner, worker_views
from streams.kcl import KclSettings, run_daemon
from streams.kcl.status import StatusDirectory
from streams.kinesis.leases import Lease, LeaseTable
from streams.kinesis.replay import kcl_start_position, leases_if_any
from streams.observe.status import local_worker_status

log = logging.getLogger("luxflow")


def register(sub: SubParsers) -> None:
    worker = sub.add_parser("worker", help="consume the stream (local runner or KCL daemon)")
    worker.add_argument(
        "--runner",
        choices=["local", "kcl"],
        default="local",
        help="local: one process polls every shard (default); kcl: the Amazon KCL "
        "MultiLangDaemon leases shards and starts one processor per shard",
    )
    worker.add_argument("--jars", default=".jars", help="KCL jars directory (--runner kcl)")
    worker.add_argument(
        "--lease-assignment-interval-ms",
        type=int,
        default=0,
        help="KCL 3: how often the leader assigns leases (default: the KCL's, 2 x failover)",
    )
    worker.add_argument(
        "--worker-metrics-interval-ms",
        type=int,
        default=0,
        help="KCL 3: how often workers report metrics for lease balancing (default 30 s)",
    )
    worker.add_argument(
        "--stop-when-idle-s",
        type=int,
        default=0,
        help="local runner: stop once every shard was caught up and quiet this long; "
        "must be longer than LUXFLOW_IDLE_TIMEOUT_MS so idle windows are written first",
    )
    worker.set_defaults(run=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.runner == "kcl":
        return run_kcl_daemon(args, settings)
    stop_when_idle_ms = args.stop_when_idle_s * 1000 if args.stop_when_idle_s else None
    warning = idle_stop_warning(args.stop_when_idle_s, settings.idle_timeout_ms)
    if warning:
        log.warning("%s", warning)
    clients = Clients(settings)
    with worker_views(settings, clients) as views:
        runner = local_runner(settings, clients, views, stop_when_idle_ms=stop_when_idle_ms)
        stop_on_signals(runner.stop)
        if views.fence is not None:
            views.fence.when_revoked(runner.stop)
        stats = registry_stats(views.registry)
        with Observability(settings, lambda: local_worker_status(runner, stats)):
            runner.run()
    counters = [p.counters for p in runner.progress.values()]
    info(
        f"luxflow worker: {plural(sum(c.records for c in counters), 'record')} read, "
        f"{sum(c.dead_lettered for c in counters)} dead-lettered, "
        f"{sum(c.skipped_already_applied for c in counters)} skipped as already applied, "
        f"{plural(sum(c.outputs for c in counters), 'output')}, "
        f"{plural(len(counters), 'shard')}"
    )
    unhealthy = runner.unhealthy()
    if unhealthy:
        # A shard that ended in error or was still failing at stop: say so in the exit status.
        for error in unhealthy:
            log.error("unhealthy at stop: %s", error)
        return 1
    return 0


def idle_stop_warning(stop_when_idle_s: int, idle_timeout_ms: int) -> str | None:
    """What a user should know when the worker will stop before idle shards close their
    windows. Allowed (a takeover test may want no idle close at all), but never silently:
    windows still open at the stop are written by the next run, not this one."""
    if not stop_when_idle_s or stop_when_idle_s * 1000 > idle_timeout_ms:
        return None
    return (
        f"--stop-when-idle-s {stop_when_idle_s} stops before idle shards close their windows "
        f"(LUXFLOW_IDLE_TIMEOUT_MS={idle_timeout_ms}): open windows stay unwritten until the "
        f"next run; use more than {idle_timeout_ms // 1000} s to write them now"
    )


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT ask the runner to stop after a last checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after a last checkpoint", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def readable_leases(settings: Settings) -> list[Lease]:
    """The leases, or none if they cannot be read now: the daemon then starts from the
    configured position and waits for DynamoDB itself, as it does for everything else (a
    task must come up while the store is unreachable). A replay from a time waiting in the
    leases needs the worker restarted once they can be read; the warning says so."""
    try:
        return leases_if_any(LeaseTable(Clients(settings).dynamodb, settings.app_name))
    except (LuxflowError, BotoCoreError, ClientError) as exc:
        log.warning(
            "the leases could not be read (%s): the KCL daemon starts from %s; if a replay "
            "from a time is waiting in them, restart the worker once DynamoDB answers",
            describe_error(exc),
            settings.initial_position,
        )
        return []


def run_kcl_daemon(args: argparse.Namespace, settings: Settings) -> int:
    """Write the daemon's properties from the settings and run it; it starts one
    `luxflow kcl-processor` per leased shard."""
    # A replay from a time left AT_TIMESTAMP leases: the daemon needs that time in its properties.
    initial_position, at_timestamp_ms = kcl_start_position(
        readable_leases(settings), settings.initial_position, settings.at_timestamp_ms
    )
    statuses = StatusDirectory(status_dir(settings))
    statuses.clear()
    kcl = KclSettings(
        stream_name=settings.stream,
        application_name=settings.app_name,
        region=settings.region,
        executable=[
            sys.executable,
            "-m",
            "app",
            "kcl-processor",
            "--status-dir",
            str(statuses.directory),
            "--lease-owner",
            settings.owner,
        ],
        initial_position=initial_position,
        at_timestamp_ms=at_timestamp_ms,
        kinesis_endpoint=settings.kinesis_endpoint_url or settings.endpoint_url or None,
        dynamodb_endpoint=settings.endpoint_url or None,
        worker_id=settings.owner,
        failover_time_ms=settings.failover_ms,
        lease_assignment_interval_ms=args.lease_assignment_interval_ms or None,
        worker_metrics_report_interval_ms=args.worker_metrics_interval_ms or None,
    )
    properties = (
        Path(tempfile.gettempdir()) / f"luxflow-{settings.app_name}-{settings.owner}.properties"
    )
    with Observability(settings, statuses.read):
        return run_daemon(kcl, jars_dir=args.jars, properties_path=properties)
