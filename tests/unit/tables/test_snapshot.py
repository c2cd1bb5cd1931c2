"""Table snapshots: incremental and whole, restore, split and merge by partition key, struct
values and tuple keys, unreadable snapshots."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import ManualClock
from core.errors import StateStoreError
from tables.keys import in_key_order
from tables.shard import ShardState
from tables.snapshot import COMPRESSED, decompress
from tables.table import Table
from tests.support.table_app import (
    GRACE,
    HOUR,
    IDLE,
    KwhReading,
    KwhTables,
    begin,
    feed,
    snap,
    state_of,
)


def populated(clock: ManualClock, app: KwhTables, sites: int = 6) -> ShardState:
    state = state_of(app, clock)
    state.activate()
    for i in range(60):
        site = f"site-{i % sites}"
        feed(state, app, KwhReading(site, f"{site}/asset-{i % 4}", HOUR - 30_000 + i * 1_000, 0.5))
    return state


def content(app: KwhTables, state: ShardState) -> tuple[dict[Any, Any], dict[Any, Any]]:
    state.activate()
    return (
        dict(app.counts.items()),
        {k: app.hourly.windows(k) for k in sorted(state.windowed["hourly"].pks)},
    )


def test_snapshot_is_none_when_nothing_changed_since_the_last_saved_one() -> None:
    app, clock = KwhTables(), ManualClock()
    state = populated(clock, app)
    first = state.snapshot()
    assert first is not None
    assert not first.delta
    state.saved(first)
    assert state.snapshot() is None
    state.advance()
    assert state.snapshot() is None


def test_snapshot_restore_round_trip() -> None:
    app, clock = KwhTables(), ManualClock()
    state = populated(clock, app)
    blob = snap(state)
    assert blob is not None
    restored = state_of(app, clock, "shard-0")
    restored.restore([[blob]], lambda _pk: True)
    assert content(app, restored) == content(app, state)
    assert restored.watermark_ms(app.hourly) == state.watermark_ms(app.hourly)
    assert snap(restored) == blob


def test_restored_state_closes_open_windows_once() -> None:
    app, clock = KwhTables(), ManualClock()
    state = populated(clock, app)
    blob = snap(state)
    assert blob is not None
    restored = state_of(app, clock)
    restored.restore([[blob]], lambda _pk: True)
    restored.activate()
    feed(restored, app, KwhReading("site-0", "site-0/asset-0", 2 * HOUR, 0.0))
    closed = restored.advance()
    assert len(closed) == 12  # every (asset, first hour) pair, once
    assert restored.advance() == []


def restarted(app: KwhTables, clock: ManualClock, state: ShardState) -> ShardState:
    """A new shard state restored from a whole snapshot of `state`, as after a failover."""
    blob = snap(state)
    fresh = state_of(app, clock)
    if blob is not None:
        fresh.restore([[blob]], lambda _pk: True)
    fresh.activate()
    return fresh


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
        min_size=1,
        max_size=25,
    ),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=25),
)
def test_windows_close_in_one_order_whatever_the_write_order_and_restores(
    values: dict[str, float], rng: Any, cut: int
) -> None:
    """A failover restores a shard with its keys in the snapshot's order; the close callbacks
    must still see the keys in the order an uninterrupted run sees them, or a room total summed
    from its assets' windows differs in the last bit (seen on the KCL failover test)."""

    def closed(order: list[str], restore_after: int | None) -> list[object]:
        app, clock = KwhTables(), ManualClock()
        state = state_of(app, clock)
        state.activate()
        for i, asset in enumerate(order):
            if i == restore_after:
                state = restarted(app, clock, state)
            feed(state, app, KwhReading("s", asset, 1_000 + i, values[asset]))
        feed(state, app, KwhReading("s", order[0], HOUR + GRACE + 1, 0.0))
        return state.advance()

    keys = list(values)
    shuffled = keys[:]
    rng.shuffle(shuffled)
    uninterrupted = closed(keys, None)
    assert [key for key, _, _ in uninterrupted] == in_key_order(keys)
    assert closed(shuffled, None) == uninterrupted
    assert closed(shuffled, min(cut, len(keys) - 1)) == uninterrupted


@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=25, unique=True),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=25),
)
def test_a_plain_table_iterates_in_one_order_whatever_the_write_order_and_restores(
    keys: list[str], rng: Any, cut: int
) -> None:
    """The offline sweep iterates every asset and the flood guard keeps the first N faults of
    a sweep: after a failover it must meet the assets in the same order."""

    def iterated(order: list[str], restore_after: int | None) -> list[tuple[Any, Any]]:
        app, clock = KwhTables(), ManualClock()
        state = state_of(app, clock)
        state.activate()
        for i, key in enumerate(order):
            if i == restore_after:
                state = restarted(app, clock, state)
            begin(state, key)
            app.counts[key] = i % 3
            if i % 4 == 1:  # deleted and written again: last in insertion order
                del app.counts[order[0]]
                app.counts[order[0]] = 0
        state.activate()
        return [(key, app.counts[key]) for key in app.counts] + app.counts.items()

    shuffled = keys[:]
    rng.shuffle(shuffled)
    uninterrupted = iterated(shuffled, None)
    assert [key for key, _ in uninterrupted][: len(keys)] == in_key_order(keys)
    assert iterated(shuffled, min(cut, len(keys) - 1)) == uninterrupted


def test_split_gives_each_child_exactly_its_keys() -> None:
    app, clock = KwhTables(), ManualClock()
    parent = populated(clock, app)
    blob = snap(parent)
    assert blob is not None
    left_sites = {"site-0", "site-2", "site-5"}
    left = state_of(app, clock, "left")
    right = state_of(app, clock, "right")
    left.restore([[blob]], lambda pk: pk in left_sites)
    right.restore([[blob]], lambda pk: pk not in left_sites)
    p_counts, p_windows = content(app, parent)
    l_counts, l_windows = content(app, left)
    r_counts, r_windows = content(app, right)
    assert set(l_counts) == left_sites
    assert {k.split("/")[0] for k in l_windows} == left_sites
    assert not set(l_windows) & set(r_windows)
    assert {**l_counts, **r_counts} == p_counts
    assert {**l_windows, **r_windows} == p_windows
    # The open windows close in the children, once in all.
    events: list[object] = []
    for child, site in ((left, "site-0"), (right, "site-1")):
        child.activate()
        feed(child, app, KwhReading(site, "x", 2 * HOUR, 0.0))
        events += child.advance()
    assert sorted(e[0] for e in events) == sorted(p_windows)  # type: ignore[index]


def test_merge_gives_the_child_both_parents() -> None:
    app, clock = KwhTables(), ManualClock()
    a = state_of(app, clock, "a")
    b = state_of(app, clock, "b")
    a.activate()
    feed(a, app, KwhReading("site-a", "asset-a", 10, 1.0))
    feed(a, app, KwhReading("site-a", "asset-a", HOUR + GRACE + 10, 1.0))  # a is an hour ahead
    a.advance()
    b.activate()
    feed(b, app, KwhReading("site-b", "asset-b", 20, 2.0))
    child = state_of(app, clock, "child")
    blobs = [snap(a), snap(b)]
    child.restore([[x] for x in blobs if x is not None], lambda _pk: True)
    counts, windows = content(app, child)
    assert counts == {"site-a": 2, "site-b": 1}
    assert windows == {
        "asset-a": [((HOUR, 2 * HOUR - 1), 1.0)],
        "asset-b": [((0, HOUR - 1), 2.0)],
    }
    assert child.watermark_ms(app.hourly) == HOUR + 10
    # b's open window is emitted by the child, once; a's (emitted by a) is not again.
    assert child.advance() == [("asset-b", (0, HOUR - 1), 2.0)]
    assert child.snapshot() is not None


def test_struct_values_and_tuple_keys_round_trip() -> None:
    class Stats(msgspec.Struct, frozen=True):
        n: int = 0
        total: float = 0.0

    t = Table("stats", default=Stats, value_type=Stats)
    state = ShardState([t], "s", ManualClock(), IDLE)
    state.activate()
    begin(state, "p")
    t[("room", 3)] = Stats(2, 1.5)
    blob = snap(state)
    assert blob is not None
    other = ShardState([t], "s", ManualClock(), IDLE)
    other.restore([[blob]], lambda _pk: True)
    other.activate()
    assert t[("room", 3)] == Stats(2, 1.5)


def test_unreadable_snapshot_raises_state_store_error() -> None:
    app = KwhTables()
    with pytest.raises(StateStoreError):
        state_of(app, ManualClock()).restore([[b"\x00garbage"]], lambda _pk: True)


def test_a_large_snapshot_is_stored_deflated_and_one_stored_plain_still_restores() -> None:
    app, clock = KwhTables(), ManualClock()
    parent = populated(clock, app, sites=40)
    blob = snap(parent)
    assert blob is not None and blob.startswith(COMPRESSED)
    plain = decompress("shard-0", blob)
    assert len(blob) < len(plain) / 2
    # A snapshot written before compression (msgpack as it is) and the deflated one restore
    # to the same state.
    for stored in (blob, plain):
        child = state_of(app, clock, "child")
        child.restore([[stored]], lambda _pk: True)
        assert content(app, child) == content(app, parent)


@given(st.binary(min_size=1, max_size=200))
def test_a_damaged_deflated_snapshot_raises_state_store_error(damage: bytes) -> None:
    with pytest.raises(StateStoreError):
        state_of(KwhTables(), ManualClock()).restore([[COMPRESSED + damage]], lambda _pk: True)
