"""`luxflow replay --run`: read what a replay reset in this process, with progress lines."""

from __future__ import annotations

import threading
import time

from cli.base import info
from cli.worker import stop_on_signals
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.worker import local_runner, worker_views
from streams.kinesis.local_runner import LocalRunner
from streams.kinesis.progress import ShardSample, progress_line, rates

QUIET_AFTER_IDLE_MS = 3_000
"""The run stops this long after the idle close: every window is written first."""


def samples(runner: LocalRunner) -> dict[str, ShardSample]:
    return {
        shard_id: ShardSample(progress.counters.records, progress.millis_behind)
        for shard_id, progress in list(runner.progress.items())
    }


def report_progress(runner: LocalRunner, every_s: float, done: threading.Event) -> None:
    """Every `every_s`, one line per shard (stderr), until `done`."""
    before, then = samples(runner), time.monotonic()
    while not done.wait(every_s):
        after, now = samples(runner), time.monotonic()
        for rate in rates(before, after, now - then):
            info(progress_line(rate))
        before, then = after, now


def run_until_caught_up(settings: Settings, clients: Clients, *, progress_s: float) -> int:
    """The local runner over every shard until all are caught up and quiet (a bounded run:
    the windows the replayed records left open are closed and written)."""
    with worker_views(settings, clients) as views:
        runner = local_runner(
            settings,
            clients,
            views,
            stop_when_idle_ms=settings.idle_timeout_ms + QUIET_AFTER_IDLE_MS,
        )
        stop_on_signals(runner.stop)
        done = threading.Event()
        reporter = threading.Thread(
            target=report_progress, args=(runner, progress_s, done), daemon=True
        )
        started = time.monotonic()
        reporter.start()
        try:
            runner.run()
        finally:
            done.set()
            reporter.join()
    counters = [p.counters for p in runner.progress.values()]
    read = sum(c.records for c in counters)
    elapsed_s = max(time.monotonic() - started, 1e-9)
    info(
        f"luxflow replay: {read} records read in {elapsed_s:.1f} s ({read / elapsed_s:,.0f} "
        f"records/s), {sum(c.outputs for c in counters)} outputs, {len(counters)} shards"
    )
    return 1 if runner.unhealthy() else 0
