"""One shard's part of one table: plain (key -> value) or windowed (window -> key -> value).

Partitions hold data and apply updates; every window decision (which windows an update lands
in, lateness, closing, expiry, session merging) is delegated to `tables.windows`. A partition
knows nothing of tables, shards or snapshots, so `tables.shard` and `tables.snapshot` both
build on it without importing each other's callers.

Every entry remembers the partition key of the record that last wrote it (`pks`), so a split
can route the key to its child. Every change records its key in `changed`, so a snapshot can
carry only the keys changed since the last saved one (`tables.snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import orjson

from tables.windows import (
    HoppingWindow,
    SessionWindow,
    Window,
    WindowRange,
    end_of,
    is_closed,
    is_expired,
    is_late_in,
    watermark_ms,
)

Key: TypeAlias = str | int | tuple[str | int, ...]
"""A table key: a str, an int, or a tuple of str/int."""


def in_key_order(keys: Iterable[Key]) -> list[Key]:
    """The one order in which a table's keys are iterated and its windows closed. Insertion
    order would not do: a shard restored from a snapshot holds its keys in the snapshot's
    order, and an agent that sums or counts across keys (room totals of asset windows, the
    flood guard's first N faults of an offline sweep) must meet them in the order an
    uninterrupted run does, to the last bit. Keys all str or all int sort as they are (fast:
    the offline sweep sorts every asset once a minute of event time); any other mix sorts by
    the keys' JSON form, total over every key type. Which of the two applies depends on the
    set of keys only, so the order does too."""
    listed = list(keys)
    if all(type(key) is str for key in listed) or all(type(key) is int for key in listed):
        return sorted(listed)
    return sorted(listed, key=orjson.dumps)


_MISSING: Any = object()


class PlainPartition:
    """key -> value, key -> partition key; `changed` holds keys written or deleted since the
    last saved snapshot."""

    __slots__ = ("changed", "data", "pks")

    def __init__(self) -> None:
        self.data: dict[Key, Any] = {}
        self.pks: dict[Key, str] = {}
        self.changed: set[Key] = set()

    def put(self, key: Key, value: Any, pk: str) -> None:
        self.data[key] = value
        self.pks[key] = pk
        self.changed.add(key)

    def delete(self, key: Key) -> None:
        del self.data[key]
        self.pks.pop(key, None)
        self.changed.add(key)

    def clear(self) -> None:
        self.data.clear()
        self.pks.clear()
        self.changed.clear()


class WindowedPartition:
    """Windows of one table, bucketed by range: `open[(start_ms, end_ms)][key] = value`.

    With hourly windows only a couple of buckets are open at a time, so closing a window is
    popping one bucket. `closed` keeps closed windows readable until they expire. Session
    tables also index each key's open sessions (`sessions`), rebuilt on restore.
    `max_event_ms` is the largest event time an update has used (reads do not move it).
    """

    __slots__ = ("changed", "clock_changed", "closed", "max_event_ms", "open", "pks", "sessions")

    def __init__(self) -> None:
        self.open: dict[WindowRange, dict[Key, Any]] = {}
        self.closed: dict[WindowRange, dict[Key, Any]] = {}
        self.pks: dict[Key, str] = {}
        self.max_event_ms: int | None = None
        self.sessions: dict[Key, list[WindowRange]] = {}
        self.changed: set[Key] = set()
        self.clock_changed = False

    def clear(self) -> None:
        self.open.clear()
        self.closed.clear()
        self.pks.clear()
        self.sessions.clear()
        self.changed.clear()
        self.max_event_ms = None
        self.clock_changed = False

    def see(self, time_ms: int) -> int:
        """Move the event clock to `time_ms` if later; returns the clock."""
        clock = self.max_event_ms
        if clock is None or time_ms > clock:
            self.max_event_ms = clock = time_ms
            self.clock_changed = True
        return clock

    def move_clock(self, to_ms: int) -> None:
        self.max_event_ms = to_ms
        self.clock_changed = True

    def update(
        self,
        window: Window,
        *,
        key: Key,
        time_ms: int,
        pk: str,
        combine: Callable[[Any], Any],
        default: Callable[[], Any],
    ) -> bool:
        """Set `combine(current or default())` in every window of `key` containing `time_ms`;
        all or nothing: returns False (nothing changed) when the update is late."""
        clock = self.see(time_ms)
        watermark = watermark_ms(clock, window.grace_ms)
        if isinstance(window, SessionWindow):
            return self._update_session(
                window,
                key=key,
                time_ms=time_ms,
                watermark=watermark,
                pk=pk,
                combine=combine,
                default=default,
            )
        ranges = window.ranges(time_ms)
        if is_late_in(ranges, time_ms, watermark):
            return False
        open_ = self.open
        for rng in ranges:
            bucket = open_.get(rng)
            if bucket is None:
                bucket = open_[rng] = {}
            current = bucket.get(key, _MISSING)
            bucket[key] = combine(default() if current is _MISSING else current)
        self.pks[key] = pk
        self.changed.add(key)
        return True

    def add(
        self,
        window: Window,
        *,
        key: Key,
        time_ms: int,
        pk: str,
        amount: Any,
        default: Callable[[], Any],
    ) -> bool:
        """`update` with `current + amount`: the hot path of `WindowedTable.add`. A tumbling
        window has one range per time, so it is placed and judged without the general loop
        (same rules: `ranges`, `is_closed`)."""
        if not (isinstance(window, HoppingWindow) and window.step_ms == window.size_ms):
            return self.update(
                window,
                key=key,
                time_ms=time_ms,
                pk=pk,
                combine=lambda current: current + amount,
                default=default,
            )
        clock = self.max_event_ms
        if clock is None or time_ms > clock:
            self.max_event_ms = clock = time_ms
            self.clock_changed = True
        rng = window.ranges(time_ms)[0]
        if is_closed(rng, watermark_ms(clock, window.grace_ms)):
            return False
        bucket = self.open.get(rng)
        if bucket is None:
            bucket = self.open[rng] = {}
        current = bucket.get(key, _MISSING)
        bucket[key] = (default() if current is _MISSING else current) + amount
        self.pks[key] = pk
        self.changed.add(key)
        return True

    def _update_session(
        self,
        window: SessionWindow,
        *,
        key: Key,
        time_ms: int,
        watermark: int,
        pk: str,
        combine: Callable[[Any], Any],
        default: Callable[[], Any],
    ) -> bool:
        if is_late_in(window.ranges(time_ms), time_ms, watermark):
            return False
        held = self.sessions.get(key, [])
        session, absorbed = window.add(held, time_ms)
        # Values of merged sessions combine with `+`, the way `add` accumulates.
        value: Any = _MISSING
        for rng in absorbed:
            bucket = self.open[rng]
            part = bucket.pop(key)
            if not bucket:
                del self.open[rng]
            value = part if value is _MISSING else value + part
        self.open.setdefault(session, {})[key] = combine(default() if value is _MISSING else value)
        self.sessions[key] = sorted([r for r in held if r not in absorbed] + [session])
        self.pks[key] = pk
        self.changed.add(key)
        return True

    def value_at(self, window: Window, key: Key, time_ms: int) -> Any:
        """The value of `key` in "the window of `time_ms`" (the latest-starting one containing
        it; for sessions, the key's session containing it), or `_MISSING`."""
        if isinstance(window, SessionWindow):
            for buckets in (self.open, self.closed):
                for rng, bucket in buckets.items():
                    if rng[0] <= time_ms <= rng[1] and key in bucket:
                        return bucket[key]
            return _MISSING
        ranges = window.ranges(time_ms)
        if not ranges:
            return _MISSING
        rng = ranges[-1]
        for buckets in (self.open, self.closed):
            held = buckets.get(rng)
            if held is not None and key in held:
                return held[key]
        return _MISSING

    def windows_of(self, key: Key) -> list[tuple[WindowRange, Any]]:
        """Every window held for `key` (open and closed-unexpired), ordered by range."""
        found = [
            (rng, bucket[key])
            for buckets in (self.open, self.closed)
            for rng, bucket in buckets.items()
            if key in bucket
        ]
        return sorted(found, key=lambda item: item[0])

    def close(self, window: Window) -> tuple[list[tuple[WindowRange, dict[Key, Any]]], int]:
        """Take the open windows the watermark has passed, in order of end (then start), and
        forget the closed ones past `expires_ms`. Closed windows move to `closed` when the
        window keeps them (`expires_ms > 0`); otherwise the caller calls `forget_keys` on them
        once their callbacks (which read `pks`) have run. Returns the
        closed windows (the caller runs the close callbacks) and the number of (key, window)
        pairs forgotten as expired."""
        if self.max_event_ms is None:
            return [], 0
        watermark = watermark_ms(self.max_event_ms, window.grace_ms)
        closing: list[tuple[WindowRange, dict[Key, Any]]] = []
        for rng in sorted(self.open, key=_by_end):
            if not is_closed(rng, watermark):
                break
            bucket = self.open.pop(rng)
            closing.append((rng, bucket))
            self.changed.update(bucket)
            if self.sessions:
                for key in bucket:
                    self._drop_session(key, rng)
            if window.expires_ms:
                self.closed.setdefault(rng, {}).update(bucket)
        expired = 0
        for rng in sorted(self.closed, key=_by_end):
            if not is_expired(rng, window.expires_ms, watermark):
                break
            bucket = self.closed.pop(rng)
            expired += len(bucket)
            self.changed.update(bucket)
            self.forget_keys(bucket)
        return closing, expired

    def _drop_session(self, key: Key, rng: WindowRange) -> None:
        held = self.sessions.get(key)
        if held is not None and rng in held:
            held.remove(rng)
            if not held:
                del self.sessions[key]

    def forget_keys(self, keys: Iterable[Key]) -> None:
        """Drop the partition key of keys that are in no bucket any more."""
        buckets = [*self.open.values(), *self.closed.values()]
        pks = self.pks
        for key in keys:
            if not any(key in bucket for bucket in buckets):
                pks.pop(key, None)

    def remove_key(self, key: Key) -> None:
        """Remove `key` from every window (a snapshot delta replaces its windows)."""
        for buckets in (self.open, self.closed):
            for rng in [r for r, b in buckets.items() if key in b]:
                bucket = buckets[rng]
                del bucket[key]
                if not bucket:
                    del buckets[rng]
        self.pks.pop(key, None)
        self.sessions.pop(key, None)

    def index_sessions(self) -> None:
        """Rebuild the per-key session index from the open buckets (after a restore)."""
        self.sessions.clear()
        for rng in sorted(self.open):
            for key in self.open[rng]:
                self.sessions.setdefault(key, []).append(rng)

    def live_windows(self) -> int:
        return sum(len(b) for b in self.open.values()) + sum(len(b) for b in self.closed.values())


def _by_end(rng: WindowRange) -> tuple[int, int]:
    return (end_of(rng), rng[0])


MISSING: Any = _MISSING
"""Marker for "no value" returned by `WindowedPartition.value_at`."""
