"""`ShardState`: the partition of every table that one shard owns, its event clock, and the
life cycle the engine drives:

    activate() -> per record: begin(event), agents, take_late() -> advance()
    -> at a checkpoint: snapshot() -> store.save(...) -> saved(pending)
    -> at start: restore(chains, keep)

The active shard (the one mechanism tables use to find their partition): `t[key]` inside an
agent needs to know which shard's partition to use, and an agent does not pass it. The
engine makes its shard current in its thread with `activate()`; tables read it with
`active_state()`. That is all the thread-local does: record context (partition key, event
time, value) is explicit, in the `core.event.Event` given to `begin()`, the same object the
agent reads as `stream.current_event`. A thread-local rather than a ContextVar on purpose:
asyncio tasks copy their context when created, so a task created before a later `activate()`
would keep seeing the old shard.

Event time, per windowed table of a shard:

- `max_event_ms` is the largest event time any update of the table has used (reads do not
  move it). It moves with every record, not per batch, so lateness decisions do not depend
  on batch boundaries and a restart from a snapshot replays them identically.
- What one record may move the clock to is limited (`ClockLimit`) when the topic gives
  records an event time: its arrival less the lag most of the shard's sources show now (the
  middle of each recently seen source's latest lag, `TypicalLag`; a source silent for
  `HORIZON_MS` of arrival time has left) plus the topic's `max_lead_ms`. A device whose clock
  runs ahead by more than that still has its readings in the windows of their own stamps, but
  cannot drag the clock past what the other devices show and make their readings late. The
  lag samples are in the snapshot, so a restored shard limits as the uninterrupted run did.
- `watermark_ms = max_event_ms - grace_ms`; a window closes when `end_ms < watermark_ms`
  (`tables.windows`). An update touching a closed window is late: it is not applied,
  `take_late()` returns True for the record, and `counters.late` counts it.
- Windows close logically at once; physically (callbacks run, memory freed) in `advance()`;
  `grace_boost` (from the app, read per batch): extra grace while the clock is before a time.
- Idle rule: the event clock moves without records only while the shard is known to be
  caught up. The engine says so: a read that returned nothing with `MillisBehindLatest` = 0
  leaves the shard quiet; any other empty read (behind the tip, after an error or an
  expired iterator: `behind()`) counts as activity. Once the shard has been quiet for
  `idle_timeout_ms` of processing time (the injected clock), the event clock of every
  windowed table moves on at the pace of processing time from when the last record was read:
  to `latest event time readings showed + (now - then)` (never back), keeping the shard's
  lag: live data closes its windows as time passes, a paused backfill moves on by the pause
  only (a pause shorter than the grace, less the skew allowance and one reading interval,
  changes no output). The only processing-time input to state; snapshotted like the rest.
  A bounded run (`bounded`: its input ends when it is read) moves the clock at least to
  processing time instead, so every window closes before the run stops.

Snapshots: a base (every key), then deltas (what changed since the last saved one; see
`snapshot()` and `tables.snapshot`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from core.errors import ConfigError, LuxflowError
from core.event import Event
from tables.keys import ChangedKeys, Key, SharedKeys, in_key_order, keys_of, shared_pk
from tables.lag import NO_LIMIT_MS, ClockLimit, TypicalLag, source_id
from tables.partition import NO_BOOST, GraceBoost, WindowedPartition
from tables.plain import PlainPartition
from tables.snapshot import FORMAT_VERSION, SNAPSHOT_FORMATS, add_chain, encode_state
from tables.spec import PendingSnapshot, ShardCounters, StoredChain, TableSpec
from tables.windows import watermark_ms


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


class ShardState:
    """The partitions of `tables` owned by shard `shard_id`, with its event clock.

    `max_deltas`: after that many saved deltas the next snapshot is a base (compaction); a
    base is also written when the deltas since the last base would outweigh it.
    `snapshot_format`: what snapshots are written as (`tables.snapshot.SNAPSHOT_FORMATS`).
    """

    def __init__(
        self,
        tables: Sequence[TableSpec],
        shard_id: str,
        now_ms: Callable[[], int],
        idle_timeout_ms: int,
        *,
        max_deltas: int = 24,
        snapshot_format: int = FORMAT_VERSION,
        bounded: bool = False,
        grace_boost: Callable[[], GraceBoost] | None = None,
        event_time: Callable[[Any], int] | None = None,
        max_lead_ms: int = 0,
        source: Callable[[Any], str] | None = None,
    ) -> None:
        """`event_time`: the event time of a record's value (e.g. a device's timestamp), so
        that a record moves the clock at most `max_lead_ms` past its arrival less the lag
        most sources show (`TypicalLag`), and the idle clock keeps that lag; None: the clock
        follows the newest event time and the idle clock keeps its lag. `source`: the source
        of a record's value (e.g. its device); None: its partition key."""
        if idle_timeout_ms <= 0:
            raise ConfigError(f"idle_timeout_ms must be > 0, got {idle_timeout_ms}")
        if max_deltas < 0 or max_lead_ms < 0:
            raise ConfigError(f"max_deltas and max_lead_ms must be >= 0: {max_deltas, max_lead_ms}")
        if snapshot_format not in SNAPSHOT_FORMATS:
            raise ConfigError(f"snapshot_format must be one of {SNAPSHOT_FORMATS}")
        self.snapshot_format = snapshot_format
        self.shard_id = shard_id
        self.now_ms = now_ms
        self.idle_timeout_ms = idle_timeout_ms
        self.bounded = bounded
        self._boost_source = grace_boost  # read per batch, not per update: the hot path
        self.grace_boost: GraceBoost = NO_BOOST
        self.counters = ShardCounters()
        self.current_event: Event[Any] | None = None
        self._pk = ""
        self._pk_intern: dict[str, str] = {}
        self.outside_a_record = False
        self._late = False
        self._inputs = 0
        self._last_input_ms = now_ms()
        self._quiet_from_ms = self._last_input_ms
        self._last_arrival_ms: int | None = None
        self._read_records = False  # records begun since the last advance
        self._event_time = event_time
        self._max_lead_ms = max_lead_ms
        self._source = source
        self._lag = TypicalLag()
        self._limit = ClockLimit()
        self.tables: dict[str, TableSpec] = {}
        self.plain: dict[str, PlainPartition] = {}
        self.windowed: dict[str, WindowedPartition] = {}
        # One key -> partition-key map for the windowed tables and the plain ones that share
        # it, not one each (`SharedKeys`), and one map of changed keys for all (`ChangedKeys`).
        windowed_keys = SharedKeys()
        self._changes = changes = ChangedKeys()
        for given in tables:
            table = given.base
            if table.name in self.tables:
                raise ConfigError(f"two tables are named {table.name!r}")
            self.tables[table.name] = table
            if table.window is None:
                group = windowed_keys if table.shares_keys else None
                self.plain[table.name] = PlainPartition(group, changes)
            else:
                self.windowed[table.name] = WindowedPartition(windowed_keys, changes, self._limit)
        # Durability: changes taken by snapshots not yet saved (key -> the tables' bits, as
        # `ChangedKeys.marks`), and the chain in the store.
        self._unsaved: dict[Key, int] = {}
        self._unsaved_clock = False
        self._unsaved_lags = False
        self._lags_changed = False  # lags added since the last snapshot took them
        self._generation = 0
        self._chain = StoredChain(max_deltas)

    # -- per record ----------------------------------------------------------------------

    def activate(self) -> None:
        """Make this shard's partitions the ones tables use in this thread."""
        _active.state = self

    def begin(self, event: Event[Any]) -> None:
        """The agents are about to process `event`: its partition key goes with every write,
        its arrival time and value give the tables' event time."""
        self.current_event = event
        pk = event.partition_key
        # Shared: a key's remembered partition key should not cost a string per key.
        held = self._pk_intern.get(pk)
        self._pk = shared_pk(self._pk_intern, pk) if held is None else held
        self._inputs += 1
        arrival = self._last_arrival_ms = event.arrival_ms
        self._read_records = True
        if self._event_time is not None:
            value = event.value
            source = pk if self._source is None else self._source(value)
            typical = self._lag.add(source_id(source), arrival - self._event_time(value), arrival)
            self._limit.ms = arrival - typical + self._max_lead_ms
            self._lags_changed = True

    def behind(self) -> None:
        """A read came back empty without proof that the shard is caught up (behind the tip,
        or after an error or an expired iterator): the shard is not idle, so the idle rule
        must not move the clock."""
        self._inputs += 1

    @contextmanager
    def outside_records(self) -> Iterator[None]:
        """Writes made inside belong to no record (an advance callback: a sweep, a timer). A
        key a plain table already holds keeps its partition key: a sweep that updates an
        asset's state must not give it the partition key of whichever record came last, or a
        split would send the state to the child that does not get the asset's records. A new
        key takes the last record's, as nothing better is known."""
        self.outside_a_record = True
        try:
            yield
        finally:
            self.outside_a_record = False

    @property
    def partition_key(self) -> str:
        """The partition key writes remember now: the current event's, or in a close callback
        the closed key's."""
        return self._pk

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

    def plain_part(self, name: str) -> PlainPartition:
        try:
            return self.plain[name]
        except KeyError:
            raise ConfigError(f"table {name!r} is windowed or not in this ShardState") from None

    def windowed_part(self, name: str) -> WindowedPartition:
        try:
            return self.windowed[name]
        except KeyError:
            raise ConfigError(f"table {name!r} is not windowed in this ShardState") from None

    # -- per batch -----------------------------------------------------------------------

    def advance(self) -> list[object]:
        """Move the idle clock, close windows the watermark has passed, forget expired ones.

        Returns the events the on_window_close callbacks produced, windows in order of end,
        keys `in_key_order` (not in order of first write, which a restore does not keep).
        Each (key, window) is closed exactly once: it leaves the open set when its callbacks
        have run.
        """
        self.activate()
        # The limit is a record's: callbacks and the idle rule move clocks on their own terms.
        self._limit.ms = NO_LIMIT_MS
        if self._boost_source is not None:
            self.grace_boost = self._boost_source()
        now = self.now_ms()
        if self._inputs:
            self._inputs = 0
            self._last_input_ms = now
            if self._read_records:
                # Quiet from when it was read, on this clock: its arrival is on the stream's,
                # and a worker clock minutes ahead of that would count them as quiet time.
                self._read_records = False
                self._quiet_from_ms = now
        elif now - self._last_input_ms >= self.idle_timeout_ms:
            floor = now if self.bounded else None
            elapsed = now - self._quiet_from_ms
            lag = self._lag.median_ms()
            arrival = self._last_arrival_ms  # the stream's time now: at most arrival + elapsed
            cap = None if lag is None else (now if arrival is None else arrival + elapsed) - lag
            if sum(p.idle_move(elapsed, floor, cap) for p in self.windowed.values()):
                self.counters.idle_advances += 1
        events: list[object] = []
        saved_pk = self._pk
        for name, part in self.windowed.items():
            table = self.tables[name]
            window = table.window
            assert window is not None
            closing, expired = part.close(window, self.grace_boost)
            self.counters.windows_expired += expired
            callbacks = table.close_callbacks
            for rng, bucket in closing:
                pks = part.pks
                for key in in_key_order(bucket):
                    value = bucket[key]
                    self._pk = pks.get(key, "")
                    for callback in callbacks:
                        events.extend(callback(key, rng, value))
                self.counters.windows_closed += len(bucket)
            if closing and not window.expires_ms:
                for _, bucket in closing:
                    part.forget_keys(bucket)
        self._pk = saved_pk
        # Updates made by callbacks belong to no record.
        self._late = False
        return events

    def event_clock_ms(self) -> int | None:
        """The shard's event clock: the largest event time its windowed tables have seen, moved
        on by processing time while the shard is idle. None before any windowed update."""
        clocks = [p.max_event_ms for p in self.windowed.values() if p.max_event_ms is not None]
        return max(clocks) if clocks else None

    def watermark_ms(self, table: TableSpec) -> int | None:
        """The watermark of a windowed table in this shard (None before its first event)."""
        base = table.base
        part = self.windowed[base.name]
        if part.max_event_ms is None or base.window is None:
            return None
        extra = self.grace_boost[0] if part.max_event_ms < self.grace_boost[1] else 0
        return watermark_ms(part.max_event_ms, base.window.grace_ms + extra)

    # -- durability ----------------------------------------------------------------------

    def changed(self) -> bool:
        """Whether a snapshot now would carry anything (changes not yet saved)."""
        return (
            self._chain.need_base
            or bool(self._unsaved)
            or self._unsaved_clock
            or self._unsaved_lags
            or self._lags_changed
            or bool(self._changes.marks)
            or any(p.clock_changed for p in self.windowed.values())
        )

    def snapshot(self, *, full: bool = False) -> PendingSnapshot | None:
        """The state to save, or None when nothing changed since the last saved snapshot.

        A delta carries the keys changed since the last snapshot whose save was confirmed by
        `saved()`, so a failed save loses nothing: its changes stay unsaved and go into the
        next snapshot. A base (every key) when `full` or when the chain asks for one
        (`StoredChain`). The state stays "changed" until `saved()` gets the latest one.
        """
        self._changes.take_into(self._unsaved)
        for wpart in self.windowed.values():
            wpart.window_changes.take_into(wpart.unsaved_windows)
            if wpart.clock_changed:
                self._unsaved_clock = True
                wpart.clock_changed = False
        if self._lags_changed:
            self._unsaved_lags = True
            self._lags_changed = False
        base = full or self._chain.base_due()
        if not base and not self._unsaved and not self._unsaved_clock and not self._unsaved_lags:
            return None
        encode = partial(
            encode_state,
            self.shard_id,
            self.plain,
            self.windowed,
            lags=self._lag.samples(),
            version=self.snapshot_format,
        )
        data = b""
        if not base:
            data = encode(changed=self._changed_by_table())
            base = self._chain.outweighs(data)
        if base:
            data = encode(changed=None)
        self._generation += 1
        self.counters.snapshots += 1
        return PendingSnapshot(data, not base, self._generation)

    def _changed_by_table(self) -> dict[str, set[Key]]:
        """The unsaved changes as each table's changed keys (tables without any left out)."""
        unsaved = self._unsaved
        out: dict[str, set[Key]] = {}
        for parts in (self.plain, self.windowed):
            for name, part in parts.items():
                keys = keys_of(unsaved, part.bit)
                if keys:
                    out[name] = keys
        return out

    def saved(self, pending: PendingSnapshot) -> None:
        """The store has `pending`: its changes are durable. A pending snapshot older than
        the latest one taken is ignored (the latest includes its changes)."""
        if pending.generation != self._generation:
            return
        self._unsaved.clear()
        self._unsaved_clock = False
        self._unsaved_lags = False
        for wpart in self.windowed.values():
            wpart.unsaved_windows.clear()
        self._chain.saved(pending)
        self.counters.deltas += pending.delta

    def restore(self, chains: Sequence[Sequence[bytes]], keep: Callable[[str], bool]) -> None:
        """Replace the state with the union of `chains`, keeping only keys whose partition key
        passes `keep`. A chain is one shard's stored snapshot: a base, then its deltas in
        order (`StoredState.blobs`).

        One chain: this shard's own snapshot (keep everything). Several, or a filter: the
        final snapshots of the parents of a split (each child keeps its hash range) or of a
        merge (both parents). Each chain is rebuilt on its own before the union, so a deletion
        in one parent never touches another's keys. Open windows come along open,
        closed-but-unexpired ones closed; the event clock is the latest of the parents'.
        After a restore the next `snapshot()` is a base, so a child's first checkpoint stores
        the state under its own id.
        """
        for part in self.plain.values():
            part.clear()
        for wpart in self.windowed.values():
            wpart.clear()
        value_types = {name: table.value_type for name, table in self.tables.items()}
        lags: list[tuple[int, int, int | None]] = []
        for chain in chains:
            if chain:
                lags += add_chain(
                    self.shard_id,
                    chain,
                    self.plain,
                    self.windowed,
                    value_types,
                    keep=keep,
                    intern=self.intern_pk,
                )
        for wpart in self.windowed.values():
            wpart.clock_changed = False
        self._changes.marks.clear()
        self._unsaved.clear()
        self._unsaved_clock = False
        self._lag.load(lags)
        self._unsaved_lags = self._lags_changed = False
        self._chain.need_base = True
        self.counters.restores += 1
        self._last_input_ms = self._quiet_from_ms = self.now_ms()
        self._last_arrival_ms = None

    @property
    def changes(self) -> ChangedKeys:
        """The keys changed since the last snapshot took the changes, for every table."""
        return self._changes

    def intern_pk(self, pk: str) -> str:
        return shared_pk(self._pk_intern, pk)

    def live_windows(self) -> int:
        """(key, window) pairs held, open or closed-but-unexpired, over all tables."""
        return sum(p.live_windows() for p in self.windowed.values())

    def key_count(self) -> int:
        """Keys held: plain table entries plus (key, window) pairs of windowed tables."""
        return sum(len(p.data) for p in self.plain.values()) + self.live_windows()
