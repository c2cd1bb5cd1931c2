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

Windows, with Faust's names (all in integer ms; conventions in `tables.windows`):
`table.tumbling(size_ms)`, `table.hopping(size_ms, step_ms)`,
`table.sliding_window(before_ms, after_ms)` and, beyond Faust, `table.session(gap_ms)`; each
takes `grace_ms=` and `expires_ms=`.

Which shard's partition `t[key]` uses is the shard made current by `ShardState.activate()`
(the one thread-local, see `tables.shard`). Record context is explicit: the event given to
`ShardState.begin()` (the agent's `stream.current_event`) gives the partition key of writes
and the event time of `relative_to_field` / `relative_to_stream`.

Values must be msgspec-serialisable as `value_type` (snapshots decode with it) and treated as
immutable: write back what you change (`t[k] = v`); in-place mutation is not persisted.
Reading a missing key returns `default()` without storing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from core.errors import ConfigError
from tables.keys import Key, in_key_order
from tables.partition import MISSING
from tables.shard import ShardState, active_state
from tables.spec import CloseCallback
from tables.windows import (
    Window,
    WindowRange,
    hopping,
    session,
    sliding,
    tumbling,
    tumbling_size_ms,
)

V = TypeVar("V")


class Table(Generic[V]):
    """A keyed table, partitioned by shard. Keys: str, int, or tuples of str/int."""

    def __init__(self, name: str, *, default: Callable[[], V], value_type: type[V]) -> None:
        if not name:
            raise ConfigError("a Table needs a name")
        self.name = name
        self.default = default
        self.value_type = value_type
        self._window: Window | None = None
        self._shares_keys = False
        # Shared by every view of the table (`relative_to_*` make new views of one table).
        self._close_callbacks: list[CloseCallback] = []

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    @property
    def base(self) -> Table[V]:
        return self

    @property
    def window(self) -> Window | None:
        return self._window

    @property
    def close_callbacks(self) -> Sequence[CloseCallback]:
        return self._close_callbacks

    @property
    def shares_keys(self) -> bool:
        return self._shares_keys

    def share_keys(self) -> Table[V]:
        """Remember this plain table's partition keys in its shard's one map for the windowed
        tables (`tables.keys.SharedKeys`), not in a map of its own: one entry per key instead
        of two, for a table keyed by the windowed tables' ids. For a table that deletes rarely
        (a delete asks every table of the map's group whether it still holds the key); a key
        written under two partition keys is then routed by the later one here too. Returns
        the table."""
        self._shares_keys = True
        return self

    # -- plain access (current shard) -----------------------------------------------------

    def __getitem__(self, key: Key) -> V:
        value = active_state().plain_part(self.name).data.get(key, MISSING)
        if value is MISSING:
            return self.default()
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: Key, value: V) -> None:
        state = active_state()
        state.plain_part(self.name).put(
            key, value, state.partition_key, keep_pk=state.outside_a_record
        )

    def __delitem__(self, key: Key) -> None:
        active_state().plain_part(self.name).delete(key)

    def __contains__(self, key: object) -> bool:
        return key in active_state().plain_part(self.name).data

    def __len__(self) -> int:
        return len(active_state().plain_part(self.name).data)

    def __iter__(self) -> Iterator[Key]:
        """The keys `in_key_order` (the same after a restore as in an uninterrupted run)."""
        return iter(in_key_order(active_state().plain_part(self.name).data))

    def get(self, key: Key, default: V | None = None) -> V | None:
        value = active_state().plain_part(self.name).data.get(key, MISSING)
        return default if value is MISSING else value

    def items(self) -> list[tuple[Key, V]]:
        """(key, value) pairs `in_key_order` (the same after a restore as in an uninterrupted
        run); a snapshot of the table, so the caller may write to it while iterating."""
        data = active_state().plain_part(self.name).data
        return [(key, data[key]) for key in in_key_order(data)]

    # -- windowing (Faust: the table itself becomes windowed; use the returned view) -------

    def tumbling(
        self, size_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """Back-to-back windows of `size_ms`, aligned to the epoch."""
        return self._windowed(tumbling(size_ms, grace_ms=grace_ms, expires_ms=expires_ms))

    def hopping(
        self, size_ms: int, step_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """Windows of `size_ms` starting every `step_ms`; an update lands in each."""
        return self._windowed(hopping(size_ms, step_ms, grace_ms=grace_ms, expires_ms=expires_ms))

    def sliding_window(
        self, before_ms: int, after_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """One window `(t - before_ms, t + after_ms)` per event time `t` (Faust's name)."""
        return self._windowed(
            sliding(before_ms, after_ms, grace_ms=grace_ms, expires_ms=expires_ms)
        )

    def session(
        self, gap_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
    ) -> WindowedTable[V]:
        """Per-key sessions closed by `gap_ms` without updates; an update bridging two
        sessions merges them, their values combined with `+`."""
        return self._windowed(session(gap_ms, grace_ms=grace_ms, expires_ms=expires_ms))

    def _windowed(self, window: Window) -> WindowedTable[V]:
        if self._window is not None:
            raise ConfigError(f"table {self.name!r} is already windowed")
        self._window = window
        return WindowedTable(self, window, _stream_time)

    def _on_window_close(self, callback: CloseCallback) -> None:
        self._close_callbacks.append(callback)


def _stream_time(state: ShardState) -> int:
    event = state.current_event
    if event is None:
        raise ConfigError("no current event: relative_to_stream needs ShardState.begin(event)")
    return event.arrival_ms


def _clock_time(state: ShardState) -> int:
    return state.now_ms()


class WindowedTable(Generic[V]):
    """A view of a windowed table: its values per window, at an event time taken from the
    current event by `time_of`. `relative_to_*` give views of the same table with another
    event time (default: the record's arrival time, as in Faust); the data, the window and
    the close callbacks are the table's, shared by all its views. See `tables.windows` for
    the window conventions and `tables.shard` for watermark, lateness and the idle rule."""

    def __init__(
        self, table: Table[V], window: Window, time_of: Callable[[ShardState], int]
    ) -> None:
        self.table = table
        self.window = window
        self._time_of = time_of
        self._tumbling_ms = tumbling_size_ms(window)

    def __repr__(self) -> str:
        return f"WindowedTable({self.table.name!r}, {self.window})"

    @property
    def base(self) -> Table[V]:
        return self.table

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def value_type(self) -> type[V]:
        return self.table.value_type

    @property
    def close_callbacks(self) -> Sequence[CloseCallback]:
        return self.table.close_callbacks

    @property
    def shares_keys(self) -> bool:
        return self.table.shares_keys

    def relative_to_field(self, field: Callable[[Any], int]) -> WindowedTable[V]:
        """A view whose event time is `field(value)` of the current event (integer ms)."""

        def of_field(state: ShardState) -> int:
            event = state.current_event
            if event is None:
                raise ConfigError("no current event: relative_to_field needs an event")
            return field(event.value)

        return WindowedTable(self.table, self.window, of_field)

    def relative_to_stream(self) -> WindowedTable[V]:
        """A view whose event time is the current event's arrival time (`event.arrival_ms`)."""
        return WindowedTable(self.table, self.window, _stream_time)

    def relative_to_now(self) -> WindowedTable[V]:
        """A view whose event time is the injected clock's now (processing time)."""
        return WindowedTable(self.table, self.window, _clock_time)

    def on_window_close(self, callback: CloseCallback) -> CloseCallback:
        """Register `callback(key, window, value) -> Iterable[event]` on the table (every view
        of it shares it); usable as a decorator. It runs once per closed (key, window), in
        `ShardState.advance()`."""
        self.table._on_window_close(callback)
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

    def add(
        self, key: Key, amount: Any, *, at_ms: int | None = None, marks_late: bool = True
    ) -> bool:
        """Add `amount` in every window containing `at_ms` (default: the event time).
        Returns False when the update was late and not applied. `marks_late=False`: a late
        update does not make the record late (no `late` dead letter), for a derived output
        that must not refuse a reading other tables took; it is still counted."""
        state = active_state()
        time_ms = self._time_of(state) if at_ms is None else at_ms
        size_ms = self._tumbling_ms
        if size_ms is None:
            return self._update(key, time_ms, amount, None, marks_late=marks_late)
        table = self.table
        if state.windowed_part(table.name).add_tumbling(
            size_ms,
            self.window.grace_ms,
            key,
            time_ms,
            pk=state.partition_key,
            default=table.default,
            amount=amount,
            boost=state.grace_boost,
        ):
            return True
        if marks_late:
            state.mark_late()
        else:
            state.counters.late_updates += 1
        return False

    def advance_to(self, time_ms: int) -> None:
        """Move this table's event clock to `time_ms` (if later) without writing anything: for
        an input that has nothing to add but whose event time has passed. Never late."""
        active_state().windowed_part(self.table.name).see(time_ms)

    def take_before(self, key: Key, until_ms: int) -> list[tuple[WindowRange, V]]:
        """Take `key` out of its open windows that end before `until_ms`, with their values,
        in order of end, without running the close callbacks: for a caller that knows those
        windows complete before their grace has passed (it judges them itself). A later
        update of such a window starts it again, and that window closes as usual."""
        return active_state().windowed_part(self.table.name).take_before(key, until_ms)

    def value_at(self, key: Key, time_ms: int) -> V:
        """Value of `key` in the window of `time_ms` (the latest-starting one containing it;
        for sessions, the key's session containing it)."""
        part = active_state().windowed_part(self.table.name)
        value = part.value_at(self.window, key, time_ms)
        return self.table.default() if value is MISSING else value

    def windows(self, key: Key) -> list[tuple[WindowRange, V]]:
        """Every window this shard holds for `key` (open and closed-unexpired), by range."""
        return active_state().windowed_part(self.table.name).windows_of(key)

    def _update(
        self, key: Key, time_ms: int, amount: Any, value: Any, *, marks_late: bool = True
    ) -> bool:
        """Add `amount` (or, when amount is None, set `value`) in every window containing
        `time_ms`; all or nothing: a late update changes no window."""
        state = active_state()
        applied = state.windowed_part(self.table.name).update(
            self.window,
            key=key,
            time_ms=time_ms,
            pk=state.partition_key,
            default=self.table.default,
            amount=amount,
            value=value,
            boost=state.grace_boost,
        )
        if not applied:
            if marks_late:
                state.mark_late()
            else:
                state.counters.late_updates += 1
        return applied


class WindowedValue(Generic[V]):
    """The value of one key of a windowed table, relative to a time.

    Bound to the current event (from `wt[key]`) or to an explicit time (from
    `wt.at(key, time_ms)`). Following Faust:

    - `value()`: the window of the table's event time (relative_to_*), or of the bound time.
    - `current()`: the window of the current event's arrival time (stream time).
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
