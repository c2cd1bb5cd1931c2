"""Bytes of memory per live asset: what one shard keeps for an asset that is reporting.

A fleet of `assets` assets sends two readings each, one minute apart in the same hour, to one
shard's engine (the real app): afterwards every asset has its rule state, its open hourly
window and whatever the app caches per asset. The records are made before tracing starts;
the engine has no sinks (their buffers are flushed at every checkpoint, not per-asset state),
so what is counted is what the process holds between checkpoints because of those assets:
table partitions, keys, remembered partition keys and app caches.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import RequestCounters, build_engine
from benchmarks.workload import ASSETS_PER_SITE, INTERVAL_MS, fleet, generate
from core.clock import ManualClock
from core.records import TRIM_HORIZON
from streams.app import App


@dataclass(frozen=True)
class MemoryResult:
    assets: int
    bytes_per_asset: float
    snapshot_bytes_per_asset: float
    live_windows: int


def measure_live_assets(build_app: Callable[[], App], assets: int) -> MemoryResult:
    sites = max(1, assets // ASSETS_PER_SITE)
    workload = generate(fleet(sites, 2 * INTERVAL_MS, episodes=False))
    records = workload.records
    engine = build_engine(
        build_app(),
        "shardId-000000000000",
        RequestCounters(),
        ManualClock(records[0].arrival_ms),
        with_sinks=False,
    )
    engine.initialize(TRIM_HORIZON)
    engine.process_records(
        records[:1]
    )  # first-use allocations (interning tables, caches) not counted
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for lo in range(1, len(records), 1_000):
            engine.process_records(records[lo : lo + 1_000])
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    pending = engine.state.snapshot(full=True)
    blob = pending.data if pending is not None else b""
    live = workload.assets
    return MemoryResult(
        assets=live,
        bytes_per_asset=(after - before) / live,
        snapshot_bytes_per_asset=len(blob) / live,
        live_windows=engine.state.live_windows(),
    )
