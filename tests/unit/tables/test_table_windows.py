"""Every window kind through the table API: placement, close callbacks, lateness, and
snapshot/restore (base and base + deltas) for tumbling, hopping, sliding and session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.event import Event
from tables.shard import ShardState
from tables.table import Table, WindowedTable
from tables.windows import WindowRange

IDLE = 10**9
Closed = tuple[Any, WindowRange, int]


def begin(state: ShardState, at_ms: int, pk: str = "p") -> None:
    state.begin(Event(state.shard_id, at_ms, 0, pk, at_ms, None))


def kinds() -> dict[str, Callable[[Table[int]], WindowedTable[int]]]:
    return {
        "tumbling": lambda t: t.tumbling(100, grace_ms=10),
        "hopping": lambda t: t.hopping(100, 50, grace_ms=10),
        "sliding": lambda t: t.sliding_window(20, 30, grace_ms=10),
        "session": lambda t: t.session(40, grace_ms=10),
    }


def setup(
    kind: str, make: Callable[[Table[int]], WindowedTable[int]] | None = None
) -> tuple[Table[int], WindowedTable[int], list[Closed], ShardState]:
    table = Table("w", default=int, value_type=int)
    wt = (make or kinds()[kind])(table).relative_to_stream()
    closed: list[Closed] = []

    @wt.on_window_close
    def record(key: Any, window: WindowRange, value: int) -> list[object]:
        closed.append((key, window, value))
        return [(key, window, value)]

    state = ShardState([table], "s", lambda: 0, IDLE)
    state.activate()
    return table, wt, closed, state


def drive(state: ShardState, wt: WindowedTable[int], times: list[int]) -> list[bool]:
    late = []
    for t in times:
        begin(state, t)
        wt["k"] += 1
        late.append(state.take_late())
    return late


EXPECTED: dict[str, tuple[list[Closed], list[tuple[WindowRange, int]]]] = {
    # Events at 5, 30, 60, 120, 300; watermark 290 at the end.
    "tumbling": ([("k", (0, 99), 3), ("k", (100, 199), 1)], [((300, 399), 1)]),
    "hopping": (
        [("k", (-50, 49), 2), ("k", (0, 99), 3), ("k", (50, 149), 2), ("k", (100, 199), 1)],
        [((250, 349), 1), ((300, 399), 1)],
    ),
    "sliding": (
        [
            ("k", (-15, 35), 1),
            ("k", (10, 60), 1),
            ("k", (40, 90), 1),
            ("k", (100, 150), 1),
        ],
        [((280, 330), 1)],
    ),
    # 5, 30, 60 chain (gaps < 40): one session (5, 99); 120 alone; 300 open.
    "session": ([("k", (5, 99), 3), ("k", (120, 159), 1)], [((300, 339), 1)]),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_updates_close_once_in_order_of_end(kind: str) -> None:
    _, wt, closed, state = setup(kind)
    assert drive(state, wt, [5, 30, 60, 120]) == [False] * 4
    assert drive(state, wt, [300]) == [False]
    events = state.advance()
    assert closed == EXPECTED[kind][0]
    assert events == closed
    assert wt.windows("k") == EXPECTED[kind][1]
    assert state.advance() == []


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_an_update_to_a_closed_window_is_late_and_not_applied(kind: str) -> None:
    _, wt, _, state = setup(kind)
    drive(state, wt, [5, 30, 60, 120, 300])
    state.advance()
    before = wt.windows("k")
    assert drive(state, wt, [10]) == [True]
    assert state.counters.late == 1
    assert wt.windows("k") == before


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("with_deltas", [False, True])
def test_restore_gives_the_same_windows_and_closes_them_once(kind: str, with_deltas: bool) -> None:
    _, wt, closed, state = setup(kind)
    chain: list[bytes] = []

    def checkpoint(full: bool) -> None:
        pending = state.snapshot(full=full)
        assert pending is not None
        state.saved(pending)
        chain.append(pending.data)

    for i in range(50):  # other keys, so that a delta is smaller than the base
        begin(state, 5)
        wt[f"other-{i}"] += 1
    drive(state, wt, [5, 30])
    checkpoint(True)
    drive(state, wt, [60, 120])
    if with_deltas:
        checkpoint(False)
    drive(state, wt, [140])
    if not with_deltas:
        chain.clear()
    checkpoint(not with_deltas)
    assert len(chain) == (3 if with_deltas else 1)
    held = wt.windows("k")

    table2, wt2, closed2, restored = setup(kind)
    restored.restore([chain], lambda _pk: True)
    restored.activate()
    assert wt2.windows("k") == held
    assert restored.watermark_ms(table2) == state.watermark_ms(wt)
    # The same later records close the same windows in both, once.
    already = len(closed)
    state.activate()
    drive(state, wt, [300])
    state.advance()
    restored.activate()
    drive(restored, wt2, [300])
    restored.advance()
    assert closed2 == closed[already:]
    assert closed2
    assert wt2.windows("k") == EXPECTED[kind][1]


def test_session_bridging_event_merges_two_sessions_and_adds_their_values() -> None:
    _, wt, closed, state = setup("session", lambda t: t.session(40, grace_ms=100))
    drive(state, wt, [0, 60])
    assert wt.windows("k") == [((0, 39), 1), ((60, 99), 1)]
    begin(state, 90)
    wt["k"] += 5  # (90, 129) overlaps (60, 99) only
    assert wt.windows("k") == [((0, 39), 1), ((60, 129), 6)]
    begin(state, 30)
    wt["k"] += 10  # (30, 69) bridges both; within grace
    assert not state.take_late()
    assert wt.windows("k") == [((0, 129), 17)]
    assert wt["k"].value() == 17
    drive(state, wt, [1000])
    state.advance()
    assert closed == [("k", (0, 129), 17)]


def test_sessions_are_per_key() -> None:
    _, wt, _, state = setup("session")
    begin(state, 0)
    wt["a"] += 1
    begin(state, 10)
    wt["b"] += 1
    assert wt.windows("a") == [((0, 39), 1)]
    assert wt.windows("b") == [((10, 49), 1)]


def test_a_restored_session_is_extended_not_doubled_even_over_a_shard_that_had_sessions() -> None:
    _, wt, _, state = setup("session", lambda t: t.session(40, grace_ms=100))
    drive(state, wt, [0, 30])
    pending = state.snapshot(full=True)
    assert pending is not None
    _, wt2, closed2, restored = setup("session", lambda t: t.session(40, grace_ms=100))
    drive(restored, wt2, [500])  # sessions of its own, forgotten by the restore
    restored.restore([[pending.data]], lambda _pk: True)
    restored.activate()
    begin(restored, 50)
    wt2["k"] += 5  # (50, 89) overlaps the restored (0, 69)
    assert wt2.windows("k") == [((0, 89), 7)]
    drive(restored, wt2, [1000])
    restored.advance()
    assert closed2 == [("k", (0, 89), 7)]


def sessions_of(times: list[int], gap_ms: int) -> list[tuple[WindowRange, int]]:
    """Brute force: each event's range (t, t + gap - 1), overlapping ranges merged (touching
    ones kept apart), with the number of events in each."""
    merged: list[tuple[WindowRange, int]] = []
    for t in sorted(times):
        if merged and t <= merged[-1][0][1]:
            (start, end), count = merged[-1]
            merged[-1] = ((start, max(end, t + gap_ms - 1)), count + 1)
        else:
            merged.append(((t, t + gap_ms - 1), 1))
    return merged


@given(
    times=st.lists(st.integers(min_value=-1_000, max_value=1_000), min_size=1, max_size=40),
    gap_ms=st.integers(min_value=1, max_value=100),
)
def test_sessions_in_any_order_are_the_brute_force_sessions(times: list[int], gap_ms: int) -> None:
    _, wt, closed, state = setup("session", lambda t: t.session(gap_ms, grace_ms=10_000))
    assert drive(state, wt, times) == [False] * len(times)
    assert wt.windows("k") == sessions_of(times, gap_ms)
    drive(state, wt, [100_000])
    state.advance()
    assert [(window, value) for _, window, value in closed] == sessions_of(times, gap_ms)
