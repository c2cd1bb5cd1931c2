"""Bytes of memory per live asset: what one shard keeps for an asset that is reporting.

A fleet of `assets` assets sends two readings each, one minute apart in the same hour, to one
shard's engine (the real app): afterwards every asset has its rule state, its open hourly
window and whatever the app caches per asset. The records are made before tracing starts;
the engine has no sinks (their buffers are flushed at every checkpoint, not per-asset state),
so what is counted is what the process holds between checkpoints because of those assets:
table partitions, keys, remembered partition keys and app caches.

`minutes` > 2 sends a reading a minute for that long: with the default 10-minute grace an
asset then holds about 11 open series intervals, the steady state of a shard that reports
every minute. `python -m benchmarks.memory --assets N --minutes M` prints the total and a
breakdown by structure (`breakdown`: a walk of the shard's tables and the registry cache,
each object counted once, where it is first met).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from benchmarks.harness import RequestCounters, build_engine
from benchmarks.workload import ASSETS_PER_SITE, INTERVAL_MS, fleet, generate
from core.clock import ManualClock
from core.records import TRIM_HORIZON
from streams.app import App
from tables.shard import ShardState


@dataclass(frozen=True)
class MemoryResult:
    assets: int
    bytes_per_asset: float
    snapshot_bytes_per_asset: float
    live_windows: int
    breakdown: dict[str, float] = field(default_factory=dict)
    """Bytes per live asset by structure (`breakdown`), when asked for."""


def measure_live_assets(
    build_app: Callable[[], App],
    assets: int,
    *,
    minutes: int = 2,
    caches: dict[str, object] | None = None,
) -> MemoryResult:
    """`caches`: objects outside the shard state to break down too (name -> object), e.g. the
    registry the app was built with; given, the result carries a `breakdown`."""
    sites = max(1, assets // ASSETS_PER_SITE)
    workload = generate(fleet(sites, minutes * INTERVAL_MS, episodes=False))
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
    live = workload.assets
    parts = {} if caches is None else breakdown(engine.state, caches, live)
    pending = engine.state.snapshot(full=True)
    blob = pending.data if pending is not None else b""
    return MemoryResult(
        assets=live,
        bytes_per_asset=(after - before) / live,
        snapshot_bytes_per_asset=len(blob) / live,
        live_windows=engine.state.live_windows(),
        breakdown=parts,
    )


def _children(obj: Any) -> Iterable[Any]:
    if isinstance(obj, dict):
        yield from obj.keys()
        yield from obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from obj
    elif isinstance(obj, msgspec.Struct):
        yield from (getattr(obj, name) for name in obj.__struct_fields__)
    elif not isinstance(obj, str | int | float | bytes | array):
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(obj, name):
                    yield getattr(obj, name)
        if hasattr(obj, "__dict__"):
            yield obj.__dict__


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of `obj` and what it refers to (containers, Structs, slots), skipping objects
    in `seen` (and adding the rest to it): shared objects count once, where first met.
    Functions and classes count as themselves only."""
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, bool | type):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if not callable(item):
            stack.extend(_children(item))
    return total


def breakdown(state: ShardState, caches: dict[str, object], live: int) -> dict[str, float]:
    """Bytes per live asset by structure: the key objects of every table first (ids: each
    asset's id string, shared by its tables), then per table its values with their
    containers, the shared key -> partition-key maps, the changed keys, then `caches`."""
    seen: set[int] = set()
    sizes: dict[str, int] = {}
    keys = [k for p in state.plain.values() for k in p.data]
    for wpart in state.windowed.values():
        keys += [k for buckets in (wpart.open, wpart.closed) for b in buckets.values() for k in b]
    # Only the key objects, not the list that gathered them.
    sizes["table keys (ids)"] = sum(deep_size(k, seen) for k in keys)
    for name, part in state.plain.items():
        sizes[f"{name}: values"] = deep_size(part.data, seen)
    for name, wpart in state.windowed.items():
        sizes[f"{name}: windows"] = deep_size(wpart.open, seen) + deep_size(wpart.closed, seen)
    pk_maps = {id(p.pks): p.pks for p in state.plain.values()}
    pk_maps.update({id(w.pks): w.pks for w in state.windowed.values()})
    sizes["key -> partition key maps"] = sum(deep_size(m, seen) for m in pk_maps.values())
    sizes["changed keys (one map, all tables)"] = deep_size(state.changes.marks, seen)
    for name, cache in caches.items():
        sizes[name] = deep_size(cache, seen)
    return {name: size / live for name, size in sizes.items() if size >= live}


def main(argv: list[str] | None = None) -> None:
    from lighting.agents import build_app
    from lighting.registry import empty_registry
    from lighting.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--minutes", type=int, default=2)
    args = parser.parse_args(argv)
    settings = Settings()
    registry = empty_registry()

    def app() -> App:
        return build_app(
            registry,
            topic=settings.stream,
            grace_ms=settings.window_grace_ms,
            deadband=settings.deadband,
        )

    result = measure_live_assets(
        app, args.assets, minutes=args.minutes, caches={"registry cache": registry}
    )
    print(f"live assets {result.assets:,}, {args.minutes} readings each, one a minute")
    print(f"bytes per live asset (tracemalloc)  {result.bytes_per_asset:8.1f}")
    print(f"snapshot bytes per live asset       {result.snapshot_bytes_per_asset:8.1f}")
    print("breakdown (bytes per live asset, each object counted once):")
    for name, size in sorted(result.breakdown.items(), key=lambda item: -item[1]):
        print(f"  {name:<40} {size:8.1f}")


if __name__ == "__main__":
    main()
