"""Faust-style tables whose data lives in the active shard's `ShardState`.

    usage = app.Table("usage", default=float, value_type=float)
    hourly = usage.tumbling(3_600_000, grace_ms=60_000).relative_to_field(lambda r: r.ts_ms)

    @hourly.on_window_close
    def report(key, window, kwh):
        yield UsageReport(key, window[0], window[1], kwh)

    # inside an agent, per reading:
    hourly[reading.asset_id] += reading.kwh          # every window containing the event time
    hourly.at(reading.asset_id, prev_ts_ms).add(kwh)  # the window(s) of an explicit time
    hourly[reading.asset_id].value()                  # value in the event's window

Values must be msgspec-serialisable as `value_type` (snapshots decode with it) and treated as
immutable: write back what you change (`t[k] = v`); in-place mutation is not persisted.
Reading a missing key returns `default()` without storing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeAlias, TypeVar

from core.errors import ConfigError
from tables.shard import (
    NoActiveShardError,
    PlainPartition,
    ShardCounters,
    ShardState,
    WindowedPartition,
    _active,
    active_state,
)
from tables.snapshot import Key
from tables.windows import HoppingWindow, WindowRange, hopping, tumbling

V = TypeVar("V")

CloseCallback: TypeAlias = Callable[[Any, WindowRange, Any], Iterable[object]]
"""`callback(key, window, value) -> events`; may be a generator. Runs in `advance()`, once per
(key, window), with `state.partition_key` set to the key's partition key."""

_MISSING: Any = object()


def _plain_part(table: Table[Any]) -> PlainPartition:
    state = _active.state
    if state is None:
        raise NoActiveShardError("no shard is active in this thread: call ShardState.activate()")
    try:
        return state.plain[table]
    except KeyError:
        raise ConfigError(f"table {table.name!r} is windowed or not in this ShardState") from None


class Table(Generic[V]):
    """A keyed table, partitioned by shard. Keys: str, int, or tuples of str/int."""

    def __init__(self, name: str, *, default: Callable[[], V], value_type: type[V]) -> None:
        if not name:
            raise ConfigError("a Table needs a name")
        self.name = name
        self.default = default
        self.value_type = value_type
        self.windowed: WindowedTable[V] | None = None

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    @property
    def base(self) -> Table[V]:
        return self

    # -- plain access (current shard) -----------------------------------------------------

    def __getitem__(self, key: Key) -> V:
        value = _plain_part(self).data.get(key, _MISSING)
        if value is _MISSING:
            return self.default()
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: Key, value: V) -> None:
        state = _active.state
        if state is None:
            raise NoActiveShardError("no shard is active in this thread")
        part = state.plain.get(self) or _plain_part(self)
        part.data[key] = value
        part.pks[key] = state._pk
        state._dirty = True

    def __delitem__(self, key: Key) -> None:
        part = _plain_part(self)
        del part.data[key]
        part.pks.pop(key, None)
        active_state().mark_dirty()

    def __contains__(self, key: object) -> bool:
        return key in _plain_part(self).data

    def __len__(self) -> int:
        return len(_plain_part(self).data)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(_plain_part(self).data))

    def get(self, key: Key, default: V | None = None) -> V | None:
        value = _plain_part(self).data.get(key, _MISSING)
        return default if value is _MISSING else value

    def items(self) -> list[tuple[Key, V]]:
        return list(_plain_part(self).data.items())

    # -- windowing ------------------------------------------------------------------------

    def tumbling(
        self, size_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """Make this table windowed by back-to-back windows of `size_ms` (Faust: the table
        itself becomes windowed; register the Table, use the returned WindowedTable)."""
        return self._window(tumbling(size_ms, grace_ms=grace_ms, expires_ms=expires_ms))

    def hopping(
        self, size_ms: int, step_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """Make this table windowed by windows of `size_ms` starting every `step_ms`."""
        return self._window(hopping(size_ms, step_ms, grace_ms=grace_ms, expires_ms=expires_ms))

    def _window(self, window: HoppingWindow) -> WindowedTable[V]:
        if self.windowed is not None:
            raise ConfigError(f"table {self.name!r} is already windowed")
        self.windowed = WindowedTable(self, window)
        return self.windowed


def _stream_time(state: ShardState) -> int:
    if state.record_time_ms is None:
        raise ConfigError("no current record: relative_to_stream needs state.record_time_ms")
    return state.record_time_ms


def _clock_time(state: ShardState) -> int:
    return state.now_ms()


class WindowedTable(Generic[V]):
    """A table of per-window values. Event time comes from `relative_to_*` (default: the
    record's arrival time, as in Faust). See `tables.windows` for the window conventions and
    `tables.shard` for watermark, lateness and the idle rule."""

    def __init__(self, table: Table[V], window: HoppingWindow) -> None:
        self.table = table
        self.window = window
        self.close_callbacks: list[CloseCallback] = []
        self._time_of: Callable[[ShardState], int] = _stream_time

    def __repr__(self) -> str:
        return f"WindowedTable({self.table.name!r}, {self.window})"

    @property
    def base(self) -> Table[V]:
        return self.table

    @property
    def name(self) -> str:
        return self.table.name

    def relative_to_field(self, field: Callable[[Any], int]) -> WindowedTable[V]:
        """Event time is `field(event)` of the current event (integer ms)."""

        def of_field(state: ShardState) -> int:
            return field(state.event)

        self._time_of = of_field
        return self

    def relative_to_stream(self) -> WindowedTable[V]:
        """Event time is the current record's arrival time (`state.record_time_ms`)."""
        self._time_of = _stream_time
        return self

    def relative_to_now(self) -> WindowedTable[V]:
        """Event time is the injected clock's now (processing time)."""
        self._time_of = _clock_time
        return self

    def on_window_close(self, callback: CloseCallback) -> CloseCallback:
        """Register `callback(key, window, value) -> Iterable[event]`; usable as a decorator.
        It runs once per closed (key, window), in `ShardState.advance()`."""
        self.close_callbacks.append(callback)
        return callback

    # -- access relative to the current event ---------------------------------------------

    def event_time_ms(self) -> int:
        """The current event's time for this table."""
        return self._time_of(active_state())

    def __getitem__(self, key: Key) -> WindowedValue[V]:
        return WindowedValue(self, key, None)

    def __setitem__(self, key: Key, value: V | WindowedValue[V]) -> None:
        if isinstance(value, WindowedValue):
            return  # `wt[k] += x` already applied the update in WindowedValue.__iadd__
        self._update(key, self._time_of(active_state()), None, value)

    def at(self, key: Key, time_ms: int) -> WindowedValue[V]:
        """The windowed value of `key` at an explicit event time: `.add(x)`, `.set(v)` and
        `.value()` act on the window(s) containing `time_ms`."""
        return WindowedValue(self, key, time_ms)

    def add(self, key: Key, amount: Any, *, at_ms: int | None = None) -> bool:
        """Add `amount` in every window containing `at_ms` (default: the event time).
        Returns False when the update was late and not applied."""
        state = active_state()
        return self._update(key, self._time_of(state) if at_ms is None else at_ms, amount, None)

    def value_at(self, key: Key, time_ms: int) -> V:
        """Value of `key` in the current (latest-starting) window containing `time_ms`."""
        part = self._part(active_state())
        start = self.window.start_of(time_ms)
        for buckets in (part.open, part.closed):
            bucket = buckets.get(start)
            if bucket is not None:
                value = bucket.get(key, _MISSING)
                if value is not _MISSING:
                    return value  # type: ignore[no-any-return]
        return self.table.default()

    def windows(self, key: Key) -> list[tuple[WindowRange, V]]:
        """Every window this shard holds for `key` (open and closed-unexpired), by start."""
        part = self._part(active_state())
        size = self.window.size_ms
        found = [
            ((start, start + size - 1), bucket[key])
            for buckets in (part.open, part.closed)
            for start, bucket in buckets.items()
            if key in bucket
        ]
        return sorted(found, key=lambda item: item[0])

    # -- internals ------------------------------------------------------------------------

    def _part(self, state: ShardState) -> WindowedPartition:
        try:
            return state.windowed[self.table]
        except KeyError:
            raise ConfigError(f"table {self.table.name!r} is not in this ShardState") from None

    def _update(self, key: Key, time_ms: int, amount: Any, value: Any) -> bool:
        """Add `amount` (or, when amount is None, set `value`) in every window containing
        `time_ms`; all or nothing: a late update changes no window."""
        state = _active.state
        if state is None:
            raise NoActiveShardError("no shard is active in this thread")
        part = state.windowed.get(self.table) or self._part(state)
        max_event = part.max_event_ms
        if max_event is None or time_ms > max_event:
            part.max_event_ms = max_event = time_ms
            state._dirty = True
        window = self.window
        step, size = window.step_ms, window.size_ms
        last_start = time_ms - time_ms % step
        if step == size:
            first_start = last_start
        else:
            first_start = (time_ms - size) - (time_ms - size) % step + step
        # Late when the earliest window containing time_ms is closed (end < watermark).
        if first_start + size - 1 < max_event - window.grace_ms:
            state.mark_late()
            return False
        open_ = part.open
        default = self.table.default
        for start in range(first_start, last_start + 1, step):
            bucket = open_.get(start)
            if bucket is None:
                bucket = open_[start] = {}
            if amount is None:
                bucket[key] = value
            else:
                current = bucket.get(key, _MISSING)
                bucket[key] = (default() if current is _MISSING else current) + amount
        state._dirty = True
        part.pks[key] = state._pk
        return True


class WindowedValue(Generic[V]):
    """The value of one key of a windowed table, relative to a time.

    Bound to the current event (from `wt[key]`) or to an explicit time (from
    `wt.at(key, time_ms)`). Following Faust:

    - `value()`: the window of the table's event time (relative_to_*), or of the bound time.
    - `current()`: the window of the current record's arrival time (stream time).
    - `now()`: the window of the injected clock's now.
    - `delta(ms)`: the window of (event time or bound time) minus `ms`.

    For hopping windows "the window of t" is the latest-starting window containing t.
    `+=`, `-=`, `add()` and `set()` update every window containing the time.
    """

    __slots__ = ("_at_ms", "_key", "_table")

    def __init__(self, table: WindowedTable[V], key: Key, at_ms: int | None) -> None:
        self._table = table
        self._key = key
        self._at_ms = at_ms

    def __repr__(self) -> str:
        return f"WindowedValue({self._table.name!r}, {self._key!r}, at_ms={self._at_ms})"

    def _time(self) -> int:
        return self._table.event_time_ms() if self._at_ms is None else self._at_ms

    def value(self) -> V:
        return self._table.value_at(self._key, self._time())

    def current(self) -> V:
        return self._table.value_at(self._key, _stream_time(active_state()))

    def now(self) -> V:
        return self._table.value_at(self._key, active_state().now_ms())

    def delta(self, delta_ms: int) -> V:
        return self._table.value_at(self._key, self._time() - delta_ms)

    def add(self, amount: Any) -> bool:
        """Add in every window containing the time; False when late (not applied)."""
        return self._table._update(self._key, self._time(), amount, None)

    def set(self, value: V) -> bool:
        """Set in every window containing the time; False when late (not applied)."""
        return self._table._update(self._key, self._time(), None, value)

    def __iadd__(self, amount: Any) -> WindowedValue[V]:
        self.add(amount)
        return self

    def __isub__(self, amount: Any) -> WindowedValue[V]:
        self.add(-amount)
        return self


__all__ = [
    "CloseCallback",
    "Key",
    "NoActiveShardError",
    "ShardCounters",
    "ShardState",
    "Table",
    "WindowedTable",
    "WindowedValue",
]
