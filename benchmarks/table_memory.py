"""Memory per live (key, window), snapshot size per 1,000 keys, and hot-path cost of tables.

Run: `.venv/bin/python -m benchmarks.table_memory` (prints a table; not a test, asserts nothing).

Figures measured on the development machine (CPython 3.11.7, msgspec 0.22), 10,000 keys
like "site-0042/building-1/room-02/asset-00042" (41 chars), float values, pk = "site-0042":

    memory per live (key, window), table structures only, 1 window/key     68 B
    the same, 2 windows per key (pk remembered once per key)               56 B
    the same, 1 window/key, counting the key string the table keeps alive  163 B
    memory per key, plain table (value + remembered pk)                    68 B
    snapshot bytes per 1,000 keys, windowed table, 1 open window each      62,004 B
    snapshot bytes per 1,000 keys, plain table                             62,004 B
    t[key] read / t[key] = v                                               0.2 / 0.2 us
    wt.add(key, x, at_ms=ts) / wt.at(key, ts).add(x) / wt[key] += x        0.6 / 0.8 / 1.1 us

A snapshot entry is (partition key, key, value) in msgpack: 62 B here, of which 41 + 9 are
the key and partition key strings. Closed windows are removed at `advance()` (or after
`expires_ms`), and a key's remembered partition key with its last window, so memory follows
the number of open windows, not the history.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from core.clock import HOUR_MS
from core.event import Event
from tables.shard import ShardState
from tables.table import Table


def _key(i: int) -> str:
    return f"site-{i % 1000:04d}/building-{i % 3}/room-{i % 10:02d}/asset-{i:05d}"


def _state(tables: list[Table[Any]]) -> ShardState:
    state = ShardState(tables, "shardId-000000000000", lambda: 0, 300_000)
    state.activate()
    state.begin(_event(""))
    return state


def _event(pk: str) -> Event[None]:
    return Event("shardId-000000000000", 0, 0, pk, 0, None)


def memory_per_window(keys: int, windows_per_key: int) -> float:
    """Bytes the table allocates per (key, window); key strings made before measuring (the
    decoded records hold them anyway)."""
    table = Table("usage", default=float, value_type=float)
    wt = table.tumbling(HOUR_MS)
    state = _state([table])
    names = [_key(i) for i in range(keys)]
    pks = [name[:9] for name in names]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for w in range(windows_per_key):
        for name, pk in zip(names, pks, strict=True):
            state.begin(_event(pk))
            wt.add(name, 1.5, at_ms=w * HOUR_MS + 1)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (keys * windows_per_key)


def memory_per_window_with_keys(keys: int) -> float:
    """Bytes per (key, window) when the table is what keeps the key strings alive: keys are
    made per record, as a decoder does, inside the measurement."""
    table = Table("usage", default=float, value_type=float)
    wt = table.tumbling(HOUR_MS)
    state = _state([table])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(keys):
        name = _key(i)
        state.begin(_event(name[:9]))
        wt.add(name, 1.5, at_ms=1)
    del name
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / keys


def memory_per_plain_key(keys: int) -> float:
    table = Table("current", default=float, value_type=float)
    state = _state([table])
    names = [_key(i) for i in range(keys)]
    pks = [name[:9] for name in names]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, (name, pk) in enumerate(zip(names, pks, strict=True)):
        state.begin(_event(pk))
        table[name] = i + 0.5
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / keys


def snapshot_bytes_per_1000(windowed: bool) -> float:
    table = Table("usage", default=float, value_type=float)
    wt = table.tumbling(HOUR_MS) if windowed else None
    state = _state([table])
    keys = 10_000
    for i in range(keys):
        name = _key(i)
        state.begin(_event(name[:9]))
        if wt is not None:
            wt.add(name, i * 0.25, at_ms=1)
        else:
            table[name] = i * 0.25
    pending = state.snapshot()
    assert pending is not None
    return len(pending.data) * 1000 / keys


def checkpoint_bytes(
    keys: int = 5_000, checkpoints: int = 120, changed_per_checkpoint: int = 417
) -> dict[str, float]:
    """Bytes written per checkpoint, whole snapshots against base + deltas.

    A shard of `keys` assets, each read once a minute, checkpointed every 5 s: each checkpoint
    sees `changed_per_checkpoint` (~1/12) assets, each updating its plain per-asset state and
    its hourly window. "full" snapshots everything at every checkpoint (before incremental
    snapshots); "incremental" is what `ShardState.snapshot()` gives, compaction included.
    Event time advances 5 s per checkpoint, so hourly windows close along the way.
    """
    results: dict[str, float] = {}
    for mode in ("full", "incremental"):
        plain = Table("asset_state", default=float, value_type=float)
        windowed_table = Table("usage_hourly", default=float, value_type=float)
        wt = windowed_table.tumbling(HOUR_MS, grace_ms=60_000)
        state = _state([plain, windowed_table])
        names = [_key(i) for i in range(keys)]
        written = 0
        for checkpoint in range(-1, checkpoints):
            now_ms = max(checkpoint, 0) * 5_000
            batch = names if checkpoint < 0 else None
            if batch is None:
                first = checkpoint * changed_per_checkpoint
                batch = [names[(first + j) % keys] for j in range(changed_per_checkpoint)]
            for name in batch:
                state.begin(_event(name[:9]))
                plain[name] = now_ms + 0.5
                wt.add(name, 0.25, at_ms=now_ms)
            state.advance()
            pending = state.snapshot(full=mode == "full")
            assert pending is not None
            state.saved(pending)
            if checkpoint >= 0:  # the first one (every key) is the same in both modes
                written += len(pending.data)
        results[mode] = written / checkpoints
    return results


def per_call_us(fn: Callable[[], object], calls: int = 200_000) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def hot_path() -> dict[str, float]:
    plain = Table("plain", default=float, value_type=float)
    windowed_table = Table("w", default=float, value_type=float)
    wt = windowed_table.tumbling(HOUR_MS).relative_to_stream()
    state = _state([plain, windowed_table])
    state.begin(_event("site-0001"))
    key = _key(1)
    plain[key] = 1.0

    def increment() -> None:
        wt[key] += 1.0

    def set_plain() -> None:
        plain[key] = 2.0

    return {
        "t[key] read": per_call_us(lambda: plain[key]),
        "t[key] = v": per_call_us(set_plain),
        "wt.add(key, x, at_ms=ts)": per_call_us(lambda: wt.add(key, 1.0, at_ms=5)),
        "wt.at(key, ts).add(x)": per_call_us(lambda: wt.at(key, 5).add(1.0)),
        "wt[key] += x": per_call_us(increment),
    }


def main() -> None:
    rows: list[tuple[str, str]] = [
        ("memory per live (key, window), 1 window/key", f"{memory_per_window(10_000, 1):.0f} B"),
        ("memory per live (key, window), 2 windows/key", f"{memory_per_window(10_000, 2):.0f} B"),
        (
            "same, 1 window/key, key strings counted",
            f"{memory_per_window_with_keys(10_000):.0f} B",
        ),
        ("memory per key, plain table", f"{memory_per_plain_key(10_000):.0f} B"),
        ("snapshot per 1,000 keys, windowed (1 window)", f"{snapshot_bytes_per_1000(True):.0f} B"),
        ("snapshot per 1,000 keys, plain", f"{snapshot_bytes_per_1000(False):.0f} B"),
    ]
    rows += [(name, f"{us:.2f} us") for name, us in hot_path().items()]
    rows += [
        (f"bytes per checkpoint, 5,000 keys, 1/12 changed, {mode}", f"{size:,.0f} B")
        for mode, size in checkpoint_bytes().items()
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}")


if __name__ == "__main__":
    main()
