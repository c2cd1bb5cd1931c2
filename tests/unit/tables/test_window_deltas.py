"""Windowed deltas that carry only the windows that changed (snapshot format 3): whatever the
windows (tumbling, hopping, sessions that absorb, closed windows kept then expired, windows
taken before they close), the order of writes, closes and snapshots, and whichever saves
fail, the stored chain restores exactly the live state, in either format and in a chain that
switches format; and a key that changes one of its many open windows stores that one."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.errors import StateStoreError
from core.event import Event
from tables import snapshot
from tables.shard import ShardState
from tables.table import Table, WindowedTable

KEYS = ["a", "b", "c", ("d", 1), 7]
WINDOWED = ["fine", "hop", "kept", "sess"]


def pk_of(key: Any) -> str:
    return f"site-{sum(map(ord, str(key))) % 3}"


class Tables:
    def __init__(self) -> None:
        self.plain = Table("plain", default=int, value_type=int)
        specs = {name: Table(name, default=int, value_type=int) for name in WINDOWED}
        self.specs = [self.plain, *specs.values()]
        self.windowed: dict[str, WindowedTable[int]] = {
            "fine": specs["fine"].tumbling(10, grace_ms=5),
            "hop": specs["hop"].hopping(20, 10, grace_ms=5),
            "kept": specs["kept"].tumbling(10, grace_ms=0, expires_ms=25),
            "sess": specs["sess"].session(8, grace_ms=4),
        }

    def state(self, snapshot_format: int) -> ShardState:
        state = ShardState(
            self.specs, "shard-0", ManualClock(), 300_000, snapshot_format=snapshot_format
        )
        state.activate()
        return state


def live(state: ShardState) -> dict[str, Any]:
    out: dict[str, Any] = {"plain": dict(state.plain["plain"].data)}
    for name, part in state.windowed.items():
        out[name] = (
            {rng: dict(b) for rng, b in part.open.items() if b},
            {rng: dict(b) for rng, b in part.closed.items() if b},
            part.max_event_ms,
            {k: part.pks[k] for k in held_keys(state, name)},
        )
    return out


def held_keys(state: ShardState, name: str) -> set[Any]:
    part = state.windowed[name]
    return {k for bs in (part.open, part.closed) for b in bs.values() for k in b}


op = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(WINDOWED),
        st.sampled_from(KEYS),
        st.integers(min_value=0, max_value=120),
        st.sampled_from(["site-0", "site-1", "site-2"]),
    ),
    st.tuples(st.just("take"), st.sampled_from(KEYS), st.integers(min_value=0, max_value=120)),
    st.tuples(st.just("put"), st.sampled_from(KEYS)),
    st.tuples(st.just("advance")),
    # A snapshot, then its save confirmed (True) or failed (False: its changes stay unsaved).
    st.tuples(st.just("snapshot"), st.booleans()),
    # From here on the shard writes the other format (a rollout, or a rollback to format 2).
    st.tuples(st.just("switch")),
)


def fill(tables: Tables) -> None:
    """Keys no step touches, so that the changes travel in deltas (a delta outweighing its base
    would be written as a base)."""
    for filler in range(1_000, 1_200):
        tables.plain[filler] = filler


def run(ops: list[tuple[Any, ...]], first_format: int) -> None:
    tables = Tables()
    state = tables.state(first_format)
    state.begin(Event("shard-0", 0, 0, "site-9", 0, None))
    fill(tables)
    base = state.snapshot()
    assert base is not None and not base.delta
    state.saved(base)
    chain = [base.data]
    for step in ops:
        if step[0] == "add":
            _, name, key, at_ms, pk = step
            state.begin(Event("shard-0", 0, 0, pk, 0, None))
            tables.windowed[name].add(key, 1, at_ms=at_ms)
        elif step[0] == "take":
            tables.windowed["fine"].take_before(step[1], step[2])
        elif step[0] == "put":
            state.begin(Event("shard-0", 0, 0, pk_of(step[1]), 0, None))
            tables.plain[step[1]] += 1
        elif step[0] == "advance":
            state.advance()
        elif step[0] == "switch":
            state.snapshot_format = 5 - state.snapshot_format
        else:
            pending = state.snapshot()
            if pending is not None and step[1]:
                chain = [*chain, pending.data] if pending.delta else [pending.data]
                state.saved(pending)
                assert restored(tables, chain, state) == live(state)
    final = state.snapshot()
    if final is not None:
        chain = [*chain, final.data] if final.delta else [final.data]
    assert restored(tables, chain, state) == live(state)


def restored(tables: Tables, chain: list[bytes], running: ShardState) -> dict[str, Any]:
    """The state `chain` restores (into a new shard state; `running` is active again after)."""
    again = tables.state(3)
    again.restore([chain], lambda _pk: True)
    running.activate()
    return live(again)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=70), st.sampled_from([2, 3]))
@example(
    # A session absorbs two of the key's windows between two saved deltas.
    [
        ("add", "sess", "a", 10, "site-0"),
        ("add", "sess", "a", 20, "site-0"),
        ("snapshot", True),
        ("add", "sess", "a", 16, "site-0"),
        ("snapshot", True),
    ],
    3,
)
@example(
    # A window closes (not kept) while its key keeps a newer one.
    [
        ("add", "fine", "a", 1, "site-0"),
        ("snapshot", True),
        ("add", "fine", "a", 30, "site-0"),
        ("advance",),
        ("snapshot", True),
    ],
    3,
)
@example(
    # A window closes and is kept (written before the last save, moved by another key's
    # record), then expires while its key keeps a newer one; one save fails.
    [
        ("add", "kept", "b", 3, "site-1"),
        ("snapshot", True),
        ("add", "kept", "c", 15, "site-1"),
        ("advance",),
        ("snapshot", False),
        ("snapshot", True),
        ("add", "kept", "b", 45, "site-1"),
        ("advance",),
        ("snapshot", True),
    ],
    3,
)
@example(
    # A window taken before it closes, from a key that keeps another.
    [
        ("add", "fine", "a", 1, "site-0"),
        ("add", "fine", "a", 12, "site-0"),
        ("snapshot", True),
        ("take", "a", 10),
        ("snapshot", True),
    ],
    3,
)
def test_a_chain_restores_the_live_state_whatever_the_windows_saves_and_formats(
    ops: list[tuple[Any, ...]], first_format: int
) -> None:
    run(ops, first_format)


def _section(blob: bytes, name: str) -> Any:
    decoded = msgspec.msgpack.decode(snapshot.decompress("shard-0", blob), type=snapshot._Blob)
    return msgspec.msgpack.decode(decoded.windowed[name], type=snapshot._Windowed[int])


@pytest.mark.parametrize("snapshot_format", [2, 3])
def test_a_key_that_changes_one_of_its_open_windows_stores_that_one_in_format_3(
    snapshot_format: int,
) -> None:
    tables = Tables()
    state = tables.state(snapshot_format)
    fine = tables.windowed["fine"]
    state.begin(Event("shard-0", 0, 0, "site-0", 0, None))
    fill(tables)
    for at_ms in range(0, 100, 10):  # ten windows; the grace keeps the last two open
        fine.add("a", 1, at_ms=at_ms)
    state.advance()
    base = state.snapshot()
    assert base is not None
    state.saved(base)
    for key in ("b", "c"):  # a window each, both open
        fine.add(key, 1, at_ms=95)
    fine.add("a", 1, at_ms=96)
    fine.add("a", 5, at_ms=105)  # a new window of "a"
    pending = state.snapshot()
    assert pending is not None and pending.delta
    section = _section(pending.data, "fine")
    carried = {
        (key, section.ranges[index][:2], value)
        for _pk, key, windows in (*section.entries, *section.updates)
        for index, value in windows
    }
    changed = {("a", (90, 99), 2), ("a", (100, 109), 5), ("b", (90, 99), 1), ("c", (90, 99), 1)}
    # Format 2 also carries the window of "a" that did not change (still open: grace 5).
    assert carried == (changed if snapshot_format == 3 else {*changed, ("a", (80, 89), 1)})
    assert (section.updates != []) == (snapshot_format == 3)
    assert pending.data[:1] != snapshot.COMPRESSED
    again = tables.state(3)
    again.restore([[base.data, pending.data]], lambda _pk: True)
    assert live(again) == live(state)


def test_a_key_with_many_open_windows_stores_only_the_changed_one() -> None:
    tables = Tables()
    state = tables.state(3)
    kept = tables.windowed["kept"]
    state.begin(Event("shard-0", 0, 0, "site-0", 0, None))
    fill(tables)
    for at_ms in range(0, 30, 10):  # three windows of "a", two closed and kept
        kept.add("a", 1, at_ms=at_ms)
    state.advance()
    base = state.snapshot()
    assert base is not None
    state.saved(base)
    kept.add("a", 2, at_ms=25)
    pending = state.snapshot()
    assert pending is not None and pending.delta
    section = _section(pending.data, "kept")
    assert section.entries == []
    assert [(key, [section.ranges[i] for i, _ in ws]) for _pk, key, ws in section.updates] == [
        ("a", [(20, 29, False)])
    ]


def test_a_snapshot_of_an_unknown_format_is_refused_in_one_line() -> None:
    tables = Tables()
    state = tables.state(3)
    state.begin(Event("shard-0", 0, 0, "site-0", 0, None))
    tables.plain["a"] = 1
    pending = state.snapshot()
    assert pending is not None
    decoded = msgspec.msgpack.decode(pending.data, type=snapshot._Blob)
    future = msgspec.msgpack.encode(msgspec.structs.replace(decoded, version=4))
    with pytest.raises(StateStoreError, match=r"snapshot format 4, expected one of 2, 3$"):
        tables.state(3).restore([[future]], lambda _pk: True)
