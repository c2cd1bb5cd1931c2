"""One shard's part of one windowed table (window -> key -> value); a plain table's part
(key -> value) is `tables.plain.PlainPartition`.

Partitions hold data and apply updates; every window decision (which windows an update lands
in, lateness, closing, expiry, session merging) is delegated to `tables.windows`, the same
way for every kind of window. A partition knows nothing of tables, shards or snapshots, so
`tables.shard` and `tables.snapshot` both build on it without importing each other's callers.

Every entry remembers the partition key of the record that last wrote it (`pks`), so a split
can route the key to its child. Every change marks its key (`changed`), so a snapshot can
carry only the keys changed since the last saved one (`tables.snapshot`). Both are kept per
key for a group of partitions, not per table (`tables.keys`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeAlias

from tables.keys import ChangedKeys, Key, SharedKeys, WindowChanges, intern_mask, keys_of
from tables.lag import ClockLimit
from tables.windows import (
    Window,
    WindowRange,
    end_of,
    is_closed,
    is_expired,
    is_late_in,
    watermark_ms,
)

_MISSING: Any = object()


GraceBoost: TypeAlias = tuple[int, int]
"""`(extra_ms, until_ms)`: while a partition's event clock is before `until_ms`, its windows
accept updates `extra_ms` later than their grace (and close that much later). A shard's boost
comes from `ShardState.grace_boost`."""
NO_BOOST: Final[GraceBoost] = (0, -(2**63))


class WindowedPartition:
    """Windows of one table, bucketed by range: `open[(start_ms, end_ms)][key] = value`.

    With hourly windows only a couple of buckets are open at a time, so closing a window is
    popping one bucket. `closed` keeps closed windows readable until they expire.
    `max_event_ms` is the event clock: the largest event time an update has used (reads do not
    move it), each held to the shard's `ClockLimit` for its record, moved on by the idle rule;
    `seen_ms` is the same without the idle rule's moves (the idle rule counts from it, never
    from its own moves).

    Every kind of window goes through the same steps (`tables.windows.Window`); what a key
    holds is computed only when its window definition asks (sessions merge with the key's
    open sessions), so the other kinds never pay for it.
    """

    __slots__ = (
        "_bit",
        "_changes",
        "_keys",
        "_limit",
        "_marks",
        "_open_of",
        "_open_windows_of",
        "_touched",
        "clock_changed",
        "closed",
        "max_event_ms",
        "open",
        "pks",
        "seen_ms",
        "unsaved_windows",
        "window_changes",
    )

    def __init__(
        self,
        keys: SharedKeys | None = None,
        changes: ChangedKeys | None = None,
        limit: ClockLimit | None = None,
    ) -> None:
        self.open: dict[WindowRange, dict[Key, Any]] = {}
        self.closed: dict[WindowRange, dict[Key, Any]] = {}
        # The group's key -> partition key map (`SharedKeys`); a group of its own if none.
        self._keys = keys = SharedKeys() if keys is None else keys
        keys.holders.append(self.holds)
        self.pks: dict[Key, str] = keys.pks
        self.max_event_ms: int | None = None
        self.seen_ms: int | None = None
        # Keys changed since the last snapshot, marked in the group's map (`ChangedKeys`).
        self._changes = changes = ChangedKeys() if changes is None else changes
        self._bit = changes.join()
        self._marks = changes.marks
        self.clock_changed = False
        # How far the current record may move the clock, set by the shard per record.
        self._limit = ClockLimit() if limit is None else limit
        # Each key's open windows, built from `open` the first time a window definition asks
        # for them and kept up to date from then on. Whatever fills `open` directly (a snapshot
        # being applied) goes through `clear()` or `remove_key()` first, which drop it: the
        # next ask rebuilds it from what `open` then holds.
        self._open_of: dict[Key, list[WindowRange]] | None = None
        self._open_windows_of = self._open_windows  # bound once: `update` is the hot path
        # Which windows changed (`WindowChanges`): since the last snapshot took them, and taken
        # by snapshots not yet saved (the shard moves one into the other and clears the second).
        self.window_changes = WindowChanges()
        self.unsaved_windows = WindowChanges()
        self._touched = self.window_changes.touched

    def clear(self) -> None:
        held = {key for buckets in (self.open, self.closed) for b in buckets.values() for key in b}
        self.open.clear()
        self.closed.clear()
        for key in held:
            self._keys.release(key)
        self._changes.forget(self._bit)
        self.max_event_ms = None
        self.seen_ms = None
        self.clock_changed = False
        self._open_of = None
        self.window_changes.clear()
        self.unsaved_windows.clear()

    @property
    def changed(self) -> frozenset[Key]:
        """The keys written, closed or expired since the last snapshot took the changes (a
        copy: mark changes through the shard's `ChangedKeys`)."""
        return frozenset(keys_of(self._marks, self._bit))

    @property
    def bit(self) -> int:
        """This partition's bit in its `ChangedKeys`."""
        return self._bit

    def idle_move(self, elapsed_ms: int, floor_ms: int | None, cap_ms: int | None = None) -> bool:
        """Move the clock of a quiet shard to what readings showed plus `elapsed_ms`, at most
        `cap_ms` (the shard's typical lag kept) and at least `floor_ms` when given, never
        back; True if it moved. From what readings showed, not from an earlier idle move:
        quiet spells separated by a reading that does not pass the clock never add up."""
        if self.max_event_ms is None:
            return False
        if self.seen_ms is None:
            # Restored from a snapshot, which keeps the clock but not what readings showed:
            # anchor here, or each idle move would count from the one before it.
            self.seen_ms = self.max_event_ms
        seen = self.seen_ms
        target = seen + elapsed_ms
        if cap_ms is not None:
            target = min(target, cap_ms)
        if floor_ms is not None:
            target = max(target, floor_ms)
        if target <= self.max_event_ms:
            return False
        self.move_clock(target)
        return True

    def see(self, time_ms: int) -> int:
        """Move the event clock to `time_ms` (at most the record's `ClockLimit`) if later;
        returns the clock."""
        time_ms = min(time_ms, self._limit.ms)
        clock = self.max_event_ms
        if clock is None or time_ms > clock:
            self.max_event_ms = clock = time_ms
            self.clock_changed = True
        seen = self.seen_ms
        if seen is None or time_ms > seen:
            self.seen_ms = time_ms
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
        default: Callable[[], Any],
        amount: Any = None,
        value: Any = None,
        boost: GraceBoost = NO_BOOST,
    ) -> bool:
        """Add `amount` (or, when it is None, set `value`) in every window of `key` containing
        `time_ms`, starting from `default()` where the key has no value yet; all or nothing:
        returns False (nothing changed) when the update is late (beyond the window's grace,
        plus `boost` while it lasts)."""
        ranges = window.ranges(time_ms)
        clock = self.see(time_ms)
        grace = window.grace_ms + boost[0] if clock < boost[1] else window.grace_ms
        if is_late_in(ranges, time_ms, watermark_ms(clock, grace)):
            return False
        targets, absorbed = window.merge(ranges, key, self._open_windows_of)
        # Values of absorbed windows combine with `+`, the way `add` accumulates.
        merged = self._take(key, absorbed) if absorbed else _MISSING
        open_ = self.open
        touched = self._touched
        for rng in targets:
            touched.add(rng)
            bucket = open_.get(rng)
            if bucket is None:
                bucket = open_[rng] = {}
            if amount is None:
                bucket[key] = value
                continue
            current = bucket.get(key, merged)
            bucket[key] = (default() if current is _MISSING else current) + amount
        if self._open_of is not None:
            self._now_open(key, targets, absorbed)
        self.pks[key] = pk
        # `ChangedKeys.mark`, inlined: the hot path.
        marks = self._marks
        held = marks.get(key, 0)
        if not held & self._bit:
            marks[key] = intern_mask(held | self._bit)
        return True

    def add_tumbling(
        self,
        size_ms: int,
        grace_ms: int,
        key: Key,
        time_ms: int,
        *,
        pk: str,
        default: Callable[[], Any],
        amount: Any,
        boost: GraceBoost,
    ) -> bool:
        """`update(amount=...)` for a tumbling window of `size_ms` (`tumbling_size_ms`), with
        the window math inlined: one range, nothing absorbed, the same clock, lateness and
        bookkeeping. The table's hot path: most updates are tumbling additions."""
        start = time_ms - time_ms % size_ms
        end = start + size_ms - 1
        limit = self._limit.ms
        moved = time_ms if time_ms <= limit else limit
        clock = self.max_event_ms
        if clock is None or moved > clock:
            self.max_event_ms = clock = moved
            self.clock_changed = True
        seen = self.seen_ms
        if seen is None or moved > seen:
            self.seen_ms = moved
        if clock < boost[1]:
            grace_ms += boost[0]
        if end < clock - grace_ms:  # is_late_in([(start, end)], time_ms, watermark_ms(...))
            return False
        rng = (start, end)
        bucket = self.open.get(rng)
        if bucket is None:
            bucket = self.open[rng] = {}
        self._touched.add(rng)
        current = bucket.get(key, _MISSING)
        bucket[key] = (default() if current is _MISSING else current) + amount
        if self._open_of is not None:
            self._now_open(key, [rng], [])
        self.pks[key] = pk
        # `ChangedKeys.mark`, inlined: the hot path.
        marks = self._marks
        held = marks.get(key, 0)
        if not held & self._bit:
            marks[key] = intern_mask(held | self._bit)
        return True

    def _open_windows(self, key: Key) -> list[WindowRange]:
        index = self._open_of
        if index is None:
            index = self._open_of = {}
            for rng in sorted(self.open):
                for held in self.open[rng]:
                    index.setdefault(held, []).append(rng)
        return index.get(key, [])

    def _now_open(self, key: Key, targets: list[WindowRange], absorbed: list[WindowRange]) -> None:
        assert self._open_of is not None
        kept = [r for r in self._open_of.get(key, ()) if r not in absorbed]
        kept.extend(r for r in targets if r not in kept)
        self._open_of[key] = sorted(kept)

    def _take(self, key: Key, absorbed: list[WindowRange]) -> Any:
        """Remove `key` from the `absorbed` open windows; the sum of its values there."""
        value: Any = _MISSING
        for rng in absorbed:
            bucket = self.open[rng]
            part = bucket.pop(key)
            if not bucket:
                del self.open[rng]
            value = part if value is _MISSING else value + part
        self.window_changes.replaced.add(key)
        return value

    def _holding(self, key: Key) -> Iterator[tuple[WindowRange, dict[Key, Any]]]:
        """The buckets holding `key`: open ones first, then closed ones."""
        for buckets in (self.open, self.closed):
            for rng, bucket in buckets.items():
                if key in bucket:
                    yield rng, bucket

    def _held_ranges(self, key: Key) -> Iterator[WindowRange]:
        return (rng for rng, _ in self._holding(key))

    def value_at(self, window: Window, key: Key, time_ms: int) -> Any:
        """The value of `key` in "the window of `time_ms`" (`Window.window_of`), or `MISSING`."""
        rng = window.window_of(time_ms, key, self._held_ranges)
        if rng is None:
            return _MISSING
        for buckets in (self.open, self.closed):
            bucket = buckets.get(rng)
            if bucket is not None and key in bucket:
                return bucket[key]
        return _MISSING

    def windows_of(self, key: Key) -> list[tuple[WindowRange, Any]]:
        """Every window held for `key` (open and closed-unexpired), ordered by range."""
        return sorted(((rng, bucket[key]) for rng, bucket in self._holding(key)), key=_by_range)

    def close(
        self, window: Window, boost: GraceBoost = NO_BOOST
    ) -> tuple[list[tuple[WindowRange, dict[Key, Any]]], int]:
        """Take the open windows the watermark has passed, in order of end (then start), and
        forget the closed ones past `expires_ms`. Closed windows move to `closed` when the
        window keeps them (`expires_ms > 0`); otherwise the caller calls `forget_keys` on them
        once their callbacks (which read `pks`) have run. Returns the
        closed windows (the caller runs the close callbacks) and the number of (key, window)
        pairs forgotten as expired."""
        if self.max_event_ms is None:
            return [], 0
        clock = self.max_event_ms
        grace = window.grace_ms + boost[0] if clock < boost[1] else window.grace_ms
        watermark = watermark_ms(clock, grace)
        closing: list[tuple[WindowRange, dict[Key, Any]]] = []
        for rng in sorted(self.open, key=_by_end):
            if not is_closed(rng, watermark):
                break
            bucket = self.open.pop(rng)
            closing.append((rng, bucket))
            self._changes.mark_all(bucket, self._bit)
            if self._open_of:
                for key in bucket:
                    self._no_longer_open(key, rng)
            if window.expires_ms:
                self.closed.setdefault(rng, {}).update(bucket)
                self._touched.add(rng)
            else:
                self.window_changes.dropped.add(rng)
        expired = 0
        for rng in sorted(self.closed, key=_by_end):
            if not is_expired(rng, window.expires_ms, watermark):
                break
            bucket = self.closed.pop(rng)
            self.window_changes.dropped.add(rng)
            expired += len(bucket)
            self._changes.mark_all(bucket, self._bit)
            self.forget_keys(bucket)
        return closing, expired

    def take_before(self, key: Key, until_ms: int) -> list[tuple[WindowRange, Any]]:
        """Remove `key` from its open windows ending before `until_ms`; their values, in
        order of end (`WindowedTable.take_before`)."""
        taken: list[tuple[WindowRange, Any]] = []
        for rng in sorted(self.open, key=_by_end):
            if rng[1] >= until_ms:
                break
            bucket = self.open[rng]
            value = bucket.pop(key, _MISSING)
            if value is _MISSING:
                continue
            taken.append((rng, value))
            if not bucket:
                del self.open[rng]
            if self._open_of is not None:
                self._no_longer_open(key, rng)
        if taken:
            self.window_changes.replaced.add(key)
            self._changes.mark(key, self._bit)
            self.forget_keys([key])
        return taken

    def _no_longer_open(self, key: Key, rng: WindowRange) -> None:
        assert self._open_of is not None
        held = self._open_of.get(key)
        if held is not None and rng in held:
            held.remove(rng)
            if not held:
                del self._open_of[key]

    def holds(self, key: Key) -> bool:
        """Whether `key` is in any window, open or closed."""
        return any(key in bucket for bucket in self.open.values()) or any(
            key in bucket for bucket in self.closed.values()
        )

    def forget_keys(self, keys: Iterable[Key]) -> None:
        """Drop the partition key of keys that are in no bucket (of any table of the group)
        any more."""
        buckets = [*self.open.values(), *self.closed.values()]
        release = self._keys.release
        for key in keys:
            if not any(key in bucket for bucket in buckets):
                release(key)

    def remove_key(self, key: Key) -> None:
        """Remove `key` from every window (a snapshot delta replaces its windows)."""
        for buckets in (self.open, self.closed):
            for rng in [r for r, b in buckets.items() if key in b]:
                bucket = buckets[rng]
                del bucket[key]
                if not bucket:
                    del buckets[rng]
        self._keys.release(key)
        self._open_of = None

    def put_window(self, rng: WindowRange, key: Key, value: Any, *, closed: bool) -> None:
        """Set `key`'s value in window `rng`, open or closed, out of the other set if it was
        there (a snapshot delta's window: `tables.snapshot`)."""
        target, other = (self.closed, self.open) if closed else (self.open, self.closed)
        held = other.get(rng)
        if held is not None and held.pop(key, _MISSING) is not _MISSING and not held:
            del other[rng]
        target.setdefault(rng, {})[key] = value
        self._open_of = None

    def drop_window(self, rng: WindowRange) -> None:
        """Forget window `rng` for every key (a snapshot delta's window gone whole)."""
        gone = {**self.open.pop(rng, {}), **self.closed.pop(rng, {})}
        self.forget_keys(gone)
        self._open_of = None

    def live_windows(self) -> int:
        return sum(len(b) for b in self.open.values()) + sum(len(b) for b in self.closed.values())


def _by_end(rng: WindowRange) -> tuple[int, int]:
    return (end_of(rng), rng[0])


def _by_range(item: tuple[WindowRange, Any]) -> WindowRange:
    return item[0]


MISSING: Any = _MISSING
"""Marker for "no value" returned by `WindowedPartition.value_at`."""
