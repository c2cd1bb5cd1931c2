"""`ShardState`: the partition of every table that one shard owns, its event clock, and the
life cycle the engine drives (activate -> records -> take_late -> advance -> snapshot).

Tables hold no data. `t[key]` looks up the partition of the shard made current by
`ShardState.activate()` in this thread. A thread-local is used rather than a ContextVar on
purpose: asyncio tasks copy their context when created, so a task created before a later
`activate()` would keep seeing the old shard.

Event time, per windowed table of a shard:

- `max_event_ms` is the largest event time any update of the table has used (reads do not
  move it). It moves with every record, not per batch, so lateness decisions do not depend
  on batch boundaries and a restart from a snapshot replays them identically.
- `watermark_ms = max_event_ms - grace_ms`; a window closes when `end_ms < watermark_ms`.
  An update touching a closed window is late: it is not applied, `take_late()` returns True
  for the record, and `counters.late` counts it.
- Windows close logically at once; physically (callbacks run, memory freed) in `advance()`.
- Idle rule: when `advance()` sees that no record arrived for `idle_timeout_ms` of processing
  time (the injected clock), the event clock of every windowed table moves on with processing
  time: it jumps by the whole silence (now - last record), and never stays behind processing
  time itself (so the windows of old or replayed data close once the shard is quiet, not an
  hour of wall time later), then follows the clock at each later `advance()` until records
  come again. This is the only processing-time input to state; it is
  stored in the snapshot like any other watermark move.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, LuxflowError
from tables.snapshot import Key, decode_into, encode_state

if TYPE_CHECKING:
    from tables.table import Table, WindowedTable


class NoActiveShardError(LuxflowError):
    """A table was used in a thread where no `ShardState.activate()` happened."""


class _Active(threading.local):
    state: ShardState | None = None


_active = _Active()


def active_state() -> ShardState:
    """The ShardState made current in this thread by `activate()`."""
    state = _active.state
    if state is None:
        raise NoActiveShardError("no shard is active in this thread: call ShardState.activate()")
    return state


class PlainPartition:
    """One shard's part of a plain table: key -> value, and key -> partition key of the
    record that last wrote it (so a split can route the key to its child)."""

    __slots__ = ("data", "pks")

    def __init__(self) -> None:
        self.data: dict[Key, Any] = {}
        self.pks: dict[Key, str] = {}


class WindowedPartition:
    """One shard's part of a windowed table.

    Windows are bucketed by start: `open[start_ms][key] = value`. With hourly windows only a
    couple of buckets are open at a time, so closing a window is popping one bucket.
    `closed` keeps closed windows readable until they expire (`expires_ms`).
    """

    __slots__ = ("closed", "max_event_ms", "open", "pks")

    def __init__(self) -> None:
        self.open: dict[int, dict[Key, Any]] = {}
        self.closed: dict[int, dict[Key, Any]] = {}
        self.pks: dict[Key, str] = {}
        self.max_event_ms: int | None = None

    def forget_keys(self, keys: Sequence[Key] | Any) -> None:
        """Drop the partition key of keys that are in no bucket any more."""
        buckets = [*self.open.values(), *self.closed.values()]
        pks = self.pks
        for key in keys:
            if not any(key in bucket for bucket in buckets):
                pks.pop(key, None)

    def live_windows(self) -> int:
        return sum(len(b) for b in self.open.values()) + sum(len(b) for b in self.closed.values())


@dataclass
class ShardCounters:
    """Counts since this ShardState was created (metrics, not state: not in snapshots)."""

    late: int = 0
    """Records for which `take_late()` returned True."""
    late_updates: int = 0
    """Individual updates rejected as late (a record may make several)."""
    windows_closed: int = 0
    """(key, window) pairs closed and passed to the on_window_close callbacks."""
    windows_expired: int = 0
    """(key, window) pairs forgotten after their `expires_ms`."""
    idle_advances: int = 0
    """`advance()` calls that moved the event clock because the shard was idle."""
    snapshots: int = 0
    restores: int = 0


class ShardState:
    """The partitions of `tables` owned by shard `shard_id`, with its event clock.

    The engine, per batch: `activate()`; per record: set `partition_key`, `record_time_ms`
    (the record's arrival_ms) and `event` (the decoded value), run the agents, then
    `take_late()`; after the batch: `advance()` and route its events. At a checkpoint:
    `snapshot()`. At start: `restore(...)`.
    """

    def __init__(
        self,
        tables: Sequence[Table[Any] | WindowedTable[Any]],
        shard_id: str,
        now_ms: Callable[[], int],
        idle_timeout_ms: int,
    ) -> None:
        if idle_timeout_ms <= 0:
            raise ConfigError(f"idle_timeout_ms must be > 0, got {idle_timeout_ms}")
        self.shard_id = shard_id
        self.now_ms = now_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.counters = ShardCounters()
        self.record_time_ms: int | None = None
        self.event: Any = None
        self._pk = ""
        self._pk_intern: dict[str, str] = {}
        self._late = False
        self._dirty = False
        self._inputs = 0
        self._last_input_ms = now_ms()
        self._clock_moved_ms = self._last_input_ms
        self.tables: dict[str, Table[Any]] = {}
        self.plain: dict[Table[Any], PlainPartition] = {}
        self.windowed: dict[Table[Any], WindowedPartition] = {}
        for given in tables:
            table = given.base
            if table.name in self.tables:
                raise ConfigError(f"two tables are named {table.name!r}")
            self.tables[table.name] = table
            if table.windowed is None:
                self.plain[table] = PlainPartition()
            else:
                self.windowed[table] = WindowedPartition()

    # -- per record ----------------------------------------------------------------------

    @property
    def partition_key(self) -> str:
        """Partition key of the current record; every write remembers it with the key."""
        return self._pk

    @partition_key.setter
    def partition_key(self, value: str) -> None:
        # Intern: a key's remembered partition key should not cost a string per key.
        pk = self._pk_intern.get(value)
        if pk is None:
            pk = self._pk_intern.setdefault(value, value)
        self._pk = pk
        self._inputs += 1

    def activate(self) -> None:
        """Make this shard's partitions the ones tables use in this thread."""
        _active.state = self

    def take_late(self) -> bool:
        """True when an update made for the current record was late beyond grace (and so
        was not applied); resets the flag. Call once per record, after the agents."""
        late = self._late
        if late:
            self._late = False
            self.counters.late += 1
        return late

    def mark_late(self) -> None:
        self._late = True
        self.counters.late_updates += 1

    def mark_dirty(self) -> None:
        self._dirty = True

    # -- per batch -----------------------------------------------------------------------

    def advance(self) -> list[object]:
        """Move the idle clock, close windows the watermark has passed, forget expired ones.

        Returns the events the on_window_close callbacks produced, windows in order of start,
        keys in order of first write. Each (key, window) is closed exactly once: it leaves
        the open set when its callbacks have run.
        """
        self.activate()
        now = self.now_ms()
        if self._inputs:
            self._inputs = 0
            self._last_input_ms = self._clock_moved_ms = now
        elif now - self._last_input_ms >= self.idle_timeout_ms and now > self._clock_moved_ms:
            elapsed = now - self._clock_moved_ms
            self._clock_moved_ms = now
            moved = False
            for part in self.windowed.values():
                if part.max_event_ms is not None:
                    part.max_event_ms = max(part.max_event_ms + elapsed, now)
                    moved = True
            if moved:
                self._dirty = True
                self.counters.idle_advances += 1
        events: list[object] = []
        saved_pk = self._pk
        for table, part in self.windowed.items():
            if part.max_event_ms is not None:
                self._close(table, part, events)
        self._pk = saved_pk
        # Updates made by callbacks belong to no record.
        self._late = False
        return events

    def _close(self, table: Table[Any], part: WindowedPartition, events: list[object]) -> None:
        windowed = table.windowed
        assert windowed is not None and part.max_event_ms is not None
        window = windowed.window
        watermark = part.max_event_ms - window.grace_ms
        callbacks = windowed.close_callbacks
        size = window.size_ms
        for start in sorted(part.open):
            end = start + size - 1
            if end >= watermark:
                break  # buckets share one size: later starts end later
            bucket = part.open[start]
            pks = part.pks
            for key, value in bucket.items():
                self._pk = pks.get(key, "")
                for callback in callbacks:
                    events.extend(callback(key, (start, end), value))
            del part.open[start]
            self.counters.windows_closed += len(bucket)
            self._dirty = True
            if window.expires_ms:
                part.closed.setdefault(start, {}).update(bucket)
            else:
                part.forget_keys(bucket)
        for start in sorted(part.closed):
            if start + size - 1 + window.expires_ms >= watermark:
                break
            bucket = part.closed.pop(start)
            self.counters.windows_expired += len(bucket)
            self._dirty = True
            part.forget_keys(bucket)

    def event_clock_ms(self) -> int | None:
        """The shard's event clock: the largest event time its windowed tables have seen, moved
        on by processing time while the shard is idle. None before any windowed update."""
        clocks = [p.max_event_ms for p in self.windowed.values() if p.max_event_ms is not None]
        return max(clocks) if clocks else None

    def watermark_ms(self, table: Table[Any] | WindowedTable[Any]) -> int | None:
        """The watermark of a windowed table in this shard (None before its first event)."""
        base = table.base
        part = self.windowed[base]
        if part.max_event_ms is None or base.windowed is None:
            return None
        return part.max_event_ms - base.windowed.window.grace_ms

    # -- durability ----------------------------------------------------------------------

    def snapshot(self) -> bytes | None:
        """All of this shard's table state as bytes, or None when nothing changed since the
        last snapshot (or restore of this shard's own snapshot)."""
        if not self._dirty:
            return None
        self._dirty = False
        self.counters.snapshots += 1
        return encode_state(self)

    def restore(self, blobs: Sequence[bytes], keep: Callable[[str], bool]) -> None:
        """Replace the state with the union of `blobs`, keeping only keys whose partition key
        passes `keep`.

        One blob: this shard's own snapshot (keep everything). Several, or a filter: the final
        snapshots of the parents of a split (each child keeps its hash range) or of a merge
        (both parents). Open windows come along open, closed-but-unexpired ones closed; the
        event clock is the latest of the parents'. After a restore the state counts as changed
        (the next `snapshot()` returns bytes), so a child's first checkpoint stores it under
        its own id.
        """
        for part in self.plain.values():
            part.data.clear()
            part.pks.clear()
        for wpart in self.windowed.values():
            wpart.open.clear()
            wpart.closed.clear()
            wpart.pks.clear()
            wpart.max_event_ms = None
        memo: dict[str, bool] = {}

        def keep_pk(pk: str) -> bool:
            kept = memo.get(pk)
            if kept is None:
                kept = memo[pk] = keep(pk)
            return kept

        for blob in blobs:
            decode_into(self, blob, keep_pk)
        self.counters.restores += 1
        self._dirty = True
        self._last_input_ms = self._clock_moved_ms = self.now_ms()

    def intern_pk(self, pk: str) -> str:
        return self._pk_intern.setdefault(pk, pk)

    def live_windows(self) -> int:
        """(key, window) pairs held, open or closed-but-unexpired, over all tables."""
        return sum(p.live_windows() for p in self.windowed.values())

    def key_count(self) -> int:
        """Keys held: plain table entries plus (key, window) pairs of windowed tables."""
        return sum(len(p.data) for p in self.plain.values()) + self.live_windows()
