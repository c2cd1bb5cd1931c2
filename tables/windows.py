"""Window definitions and their math, on integer milliseconds: pure, no state, no clock.

Conventions (used everywhere in `tables/`):

- A window is a `WindowRange = (start_ms, end_ms)` with BOTH ends inclusive:
  `end_ms = start_ms + size_ms - 1`. A timestamp `t` is in the window iff
  `start_ms <= t <= end_ms`. The hour window of 10:00 is (10:00:00.000, 10:59:59.999);
  11:00:00.000 belongs to the next one. No float epsilons.
- Tumbling and hopping windows are aligned to the epoch: starts are multiples of `step_ms`
  (tumbling: `step_ms == size_ms`). Negative timestamps floor correctly.
- Watermark: `watermark_ms = max_event_ms - grace_ms`. A window is closed when
  `end_ms < watermark_ms` ("the watermark has passed its end"), i.e. when an event later than
  `end_ms + grace_ms` has been seen. It stays readable until `end_ms + expires_ms <
  watermark_ms` (expired), then it may be forgotten.
- An update at time `t` is late when ANY window containing `t` is closed (for hopping: the
  earliest one, which ends first). Late updates are rejected as a whole, never half-applied.
  A timestamp in no window (hopping with `step_ms > size_ms`) is late once the watermark
  passes the timestamp itself.
- Sessions are per key: an event opens its own range, which absorbs the key's open sessions
  it overlaps. A session's range grows; other windows never change once created. Lateness of
  a session update is judged on the event's own range.

A definition (`HoppingWindow`, `SlidingWindow`, `SessionWindow`) holds its parameters and
answers the `Window` protocol; what the windows hold (buckets of values, each key's open
sessions) is runtime state, kept by `tables.partition`. Watermark, lateness, closing and
expiry are one rule for every kind: `watermark_ms`, `is_late_in`, `is_closed`, `is_expired`.
This is the only window math in luxflow: nothing else computes a window's start or end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar

WindowRange: TypeAlias = tuple[int, int]
"""(start_ms, end_ms), both inclusive."""

K = TypeVar("K")
"""A table key: window definitions never look inside one, they only pass it to `held`."""


class Window(Protocol):
    """What every window definition offers (`HoppingWindow`, `SlidingWindow`, `SessionWindow`).

    A table places an update at `t` with `ranges(t)` (late when `is_late_in(ranges(t), t,
    watermark)`, then nothing changes), then `merge`; a read at `t` looks at `window_of`.
    `held(key)` gives the windows the table holds for a key; the kinds whose windows never
    change once created answer without calling it, so their tables never compute it. What a
    kind needs beyond that is its own: no caller asks which kind a window is.
    """

    @property
    def grace_ms(self) -> int: ...

    @property
    def expires_ms(self) -> int: ...

    def ranges(self, timestamp_ms: int) -> list[WindowRange]:
        """The windows an event at `timestamp_ms` lies in on its own, ordered by start
        (earliest first); for a session, the event's own range."""
        ...

    def merge(
        self, ranges: list[WindowRange], key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> tuple[list[WindowRange], list[WindowRange]]:
        """`(windows, absorbed)`: the windows an update of `key` with `ranges` sets, and which
        of the key's open windows (`held(key)`) it absorbs. Absorbed windows are replaced by
        the one window set, their values combined with `+`; only sessions absorb."""
        ...

    def window_of(
        self, timestamp_ms: int, key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> WindowRange | None:
        """The window a read at `timestamp_ms` returns: the latest-starting one containing
        it; for a session, the key's session containing it, among `held(key)` (every window of
        the key, open ones first). None when there is none."""
        ...


def watermark_ms(max_event_ms: int, grace_ms: int) -> int:
    """The watermark of a clock that has seen `max_event_ms`: max event time minus grace."""
    return max_event_ms - grace_ms


def is_closed(window: WindowRange, watermark: int) -> bool:
    """True when the watermark has passed the window's (inclusive) end."""
    return window[1] < watermark


def is_expired(window: WindowRange, expires_ms: int, watermark: int) -> bool:
    """True when the watermark has passed the window's end by more than `expires_ms`: a
    closed window its table keeps readable that long may now be forgotten."""
    return window[1] + expires_ms < watermark


def is_late_in(ranges: list[WindowRange], timestamp_ms: int, watermark: int) -> bool:
    """True when an update at `timestamp_ms`, landing in `ranges` (one kind's windows, all of
    one length, ordered by start: the first ends first), touches a closed window; with no
    window at all, when the watermark passed the timestamp."""
    return (ranges[0][1] if ranges else timestamp_ms) < watermark


def end_of(window: WindowRange) -> int:
    """The window's inclusive end (sort key for closing in order)."""
    return window[1]


def tumbling_size_ms(window: Window) -> int | None:
    """`size_ms` of a tumbling window (a hopping one whose step is its size), else None: a
    tumbling update lands in exactly one window, which lets a table skip the general steps."""
    if isinstance(window, HoppingWindow) and window.step_ms == window.size_ms:
        return window.size_ms
    return None


def _check_common(grace_ms: int, expires_ms: int) -> None:
    if grace_ms < 0:
        raise ValueError(f"grace_ms must be >= 0, got {grace_ms}")
    if expires_ms < 0:
        raise ValueError(f"expires_ms must be >= 0, got {expires_ms}")


class _FixedWindows:
    """The kinds whose windows never change once created (hopping, sliding): an update sets
    every window of its time, a read returns the latest-starting one, and what a key holds
    is never asked for."""

    __slots__ = ()

    def ranges(self, timestamp_ms: int) -> list[WindowRange]:
        raise NotImplementedError

    def merge(
        self, ranges: list[WindowRange], key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> tuple[list[WindowRange], list[WindowRange]]:
        return ranges, []

    def window_of(
        self, timestamp_ms: int, key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> WindowRange | None:
        ranges = self.ranges(timestamp_ms)
        return ranges[-1] if ranges else None


@dataclass(frozen=True, slots=True)
class HoppingWindow(_FixedWindows):
    """Windows of `size_ms` starting every `step_ms` (tumbling when `step_ms == size_ms`).

    A timestamp lies in `ceil(size_ms / step_ms)` windows, or one fewer depending on
    alignment; with `step_ms > size_ms` some timestamps lie in none.
    """

    size_ms: int
    step_ms: int
    grace_ms: int = 0
    expires_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.step_ms <= 0:
            raise ValueError(f"size_ms and step_ms must be > 0, got {self.size_ms}, {self.step_ms}")
        _check_common(self.grace_ms, self.expires_ms)

    def ranges(self, timestamp_ms: int) -> list[WindowRange]:
        step, size = self.step_ms, self.size_ms
        last = timestamp_ms - timestamp_ms % step
        if step == size:
            return [(last, last + size - 1)]
        # Starts s = k * step with timestamp - size < s <= timestamp.
        first = (timestamp_ms - size) - (timestamp_ms - size) % step + step
        return [(s, s + size - 1) for s in range(first, last + 1, step)]


@dataclass(frozen=True, slots=True)
class SlidingWindow(_FixedWindows):
    """One window per event: `(t - before_ms, t + after_ms)`, both ends inclusive (Faust's
    SlidingWindow). `table.sliding_window(before_ms, after_ms)` makes a table of them."""

    before_ms: int
    after_ms: int
    grace_ms: int = 0
    expires_ms: int = 0

    def __post_init__(self) -> None:
        if self.before_ms < 0 or self.after_ms < 0:
            raise ValueError("before_ms and after_ms must be >= 0")
        _check_common(self.grace_ms, self.expires_ms)

    def ranges(self, timestamp_ms: int) -> list[WindowRange]:
        return [(timestamp_ms - self.before_ms, timestamp_ms + self.after_ms)]


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """Sessions separated by at least `gap_ms` of silence.

    An event at `t` opens the range `(t, t + gap_ms - 1)`: the session stays open while the
    next event comes less than `gap_ms` later. Two events belong to the same session iff
    they are chained by gaps `< gap_ms`; overlapping ranges merge, touching ones
    (`end + 1 == start`, a gap of exactly `gap_ms`) do not. A session's range is
    `(first_event_ms, last_event_ms + gap_ms - 1)`; it closes like any window.
    """

    gap_ms: int
    grace_ms: int = 0
    expires_ms: int = 0

    def __post_init__(self) -> None:
        if self.gap_ms <= 0:
            raise ValueError(f"gap_ms must be > 0, got {self.gap_ms}")
        _check_common(self.grace_ms, self.expires_ms)

    def ranges(self, timestamp_ms: int) -> list[WindowRange]:
        return [(timestamp_ms, timestamp_ms + self.gap_ms - 1)]

    def merge(
        self, ranges: list[WindowRange], key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> tuple[list[WindowRange], list[WindowRange]]:
        """The event's range joined with every open session of the key it overlaps: one
        session, absorbing them (an event may bridge two sessions)."""
        ((start, end),) = ranges
        absorbed = [s for s in held(key) if s[0] <= end and start <= s[1]]
        for s_start, s_end in absorbed:
            start = min(start, s_start)
            end = max(end, s_end)
        return [(start, end)], sorted(absorbed)

    def window_of(
        self, timestamp_ms: int, key: K, held: Callable[[K], Iterable[WindowRange]]
    ) -> WindowRange | None:
        return next((r for r in held(key) if r[0] <= timestamp_ms <= r[1]), None)


def tumbling(size_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None) -> HoppingWindow:
    """Back-to-back windows of `size_ms`. `expires_ms=None` means forget at close."""
    return HoppingWindow(size_ms, size_ms, grace_ms, expires_ms or 0)


def hopping(
    size_ms: int, step_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
) -> HoppingWindow:
    """Windows of `size_ms` every `step_ms` (overlapping when `step_ms < size_ms`)."""
    return HoppingWindow(size_ms, step_ms, grace_ms, expires_ms or 0)


def sliding(
    before_ms: int, after_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None
) -> SlidingWindow:
    """One window `(t - before_ms, t + after_ms)` around each event."""
    return SlidingWindow(before_ms, after_ms, grace_ms, expires_ms or 0)


def session(gap_ms: int, *, grace_ms: int = 0, expires_ms: int | None = None) -> SessionWindow:
    """Sessions closed by `gap_ms` of silence."""
    return SessionWindow(gap_ms, grace_ms, expires_ms or 0)
