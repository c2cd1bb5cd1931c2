"""Window math: inclusive integer ends, hopping overlaps, lateness, sessions."""

from __future__ import annotations

import pytest

from tables.windows import (
    HoppingWindow,
    Window,
    WindowRange,
    hopping,
    is_closed,
    is_expired,
    is_late_in,
    session,
    sliding,
    tumbling,
    watermark_ms,
)

HOUR = 3_600_000


def brute_ranges(size: int, step: int, ts: int) -> list[tuple[int, int]]:
    starts = range((ts - 3 * size) - (ts - 3 * size) % step, ts + 1, step)
    return [(s, s + size - 1) for s in starts if s <= ts <= s + size - 1]


def late(window: Window, timestamp_ms: int, max_event_ms: int) -> bool:
    """The lateness rule as a table applies it: on the event's own windows."""
    watermark = watermark_ms(max_event_ms, window.grace_ms)
    return is_late_in(window.ranges(timestamp_ms), timestamp_ms, watermark)


def never_asked(key: str) -> list[WindowRange]:
    raise AssertionError(f"a window that never changes asked what {key!r} holds")


def test_tumbling_end_is_start_plus_size_minus_one() -> None:
    w = tumbling(1000)
    assert w.ranges(0) == [(0, 999)]
    assert w.ranges(999) == [(0, 999)]
    assert w.ranges(1000) == [(1000, 1999)]
    assert w.ranges(-1) == [(-1000, -1)]


def test_hour_boundary_belongs_to_the_next_hour() -> None:
    w = tumbling(HOUR)
    ten = 10 * HOUR
    assert w.ranges(ten - 1) == [(9 * HOUR, ten - 1)]
    assert w.ranges(ten) == [(ten, 11 * HOUR - 1)]


def test_hopping_overlaps() -> None:
    w = hopping(10, 5)
    assert w.ranges(7) == [(0, 9), (5, 14)]
    assert w.ranges(5) == [(0, 9), (5, 14)]
    assert w.ranges(4) == [(-5, 4), (0, 9)]
    assert w.ranges(10) == [(5, 14), (10, 19)]
    quarter = hopping(HOUR, HOUR // 4)
    assert len(quarter.ranges(12_345_678)) == 4


def test_hopping_with_gaps_between_windows() -> None:
    w = hopping(5, 10)
    assert w.ranges(3) == [(0, 4)]
    assert w.ranges(7) == []
    assert w.window_of(7, "k", never_asked) is None


@pytest.mark.parametrize(("size", "step"), [(1, 1), (7, 7), (10, 5), (10, 3), (9, 4), (5, 10)])
def test_hopping_ranges_match_brute_force(size: int, step: int) -> None:
    w = HoppingWindow(size, step)
    for ts in range(-50, 50):
        assert w.ranges(ts) == brute_ranges(size, step, ts), ts


def test_fixed_windows_place_and_read_without_asking_what_the_key_holds() -> None:
    for w in (hopping(10, 5), tumbling(100), sliding(100, 50)):
        ranges = w.ranges(7)
        assert w.merge(ranges, "k", never_asked) == (ranges, [])
        assert w.window_of(7, "k", never_asked) == ranges[-1]
    assert hopping(10, 5).window_of(7, "k", never_asked) == (5, 14)
    assert tumbling(100).window_of(150, "k", never_asked) == (100, 199)


def test_closed_when_watermark_passes_the_end() -> None:
    assert watermark_ms(1100, 100) == 1000
    assert not is_closed((0, 999), 999)
    assert is_closed((0, 999), 1000)


def test_lateness_boundary_with_grace() -> None:
    w = tumbling(1000, grace_ms=100)
    # Window (0, 999) accepts updates until an event later than 999 + 100 was seen.
    assert not late(w, 999, max_event_ms=1099)
    assert late(w, 999, max_event_ms=1100)
    assert late(w, 0, max_event_ms=1100)
    assert not late(w, 1000, max_event_ms=1100)


def test_hopping_late_when_its_earliest_window_closed() -> None:
    w = hopping(10, 5)
    # 7 is in (0, 9) and (5, 14): late once (0, 9) closed, i.e. max_event >= 10.
    assert not late(w, 7, 9)
    assert late(w, 7, 10)


def test_expiry_after_close() -> None:
    # Closed at watermark 1000, readable until the watermark passes 999 + 500.
    assert not is_expired((0, 999), 500, watermark_ms(1499, 0))
    assert is_expired((0, 999), 500, watermark_ms(1500, 0))
    assert is_expired((0, 999), 0, watermark_ms(1000, 0))
    assert not is_expired((0, 999), 0, watermark_ms(1100, 101))


def test_sliding_window_around_the_event() -> None:
    w = sliding(100, 50, grace_ms=10)
    assert w.ranges(1000) == [(900, 1050)]
    assert not late(w, 1000, 1060)
    assert late(w, 1000, 1061)


def test_session_same_while_gap_is_shorter() -> None:
    s = session(10)
    assert s.ranges(0) == [(0, 9)]
    assert s.merge(s.ranges(9), "k", {"k": [(0, 9)]}.__getitem__) == ([(0, 18)], [(0, 9)])
    # A gap of exactly gap_ms opens a new session.
    assert s.merge(s.ranges(10), "k", {"k": [(0, 9)]}.__getitem__) == ([(10, 19)], [])


def test_session_event_bridges_two_sessions() -> None:
    s = session(10)
    merged, absorbed = s.merge(s.ranges(8), "k", {"k": [(15, 24), (0, 9), (30, 39)]}.__getitem__)
    assert merged == [(0, 24)]
    assert absorbed == [(0, 9), (15, 24)]


def test_a_session_read_finds_the_keys_session_containing_the_time() -> None:
    s = session(10)
    held = {"a": [(20, 35), (0, 9)], "b": [(10, 19)]}.__getitem__
    assert s.window_of(25, "a", held) == (20, 35)
    assert s.window_of(9, "a", held) == (0, 9)
    assert s.window_of(15, "a", held) is None
    assert s.window_of(15, "b", held) == (10, 19)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tumbling(0),
        lambda: hopping(10, 0),
        lambda: tumbling(10, grace_ms=-1),
        lambda: session(0),
        lambda: sliding(-1, 0),
    ],
)
def test_invalid_definitions_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
