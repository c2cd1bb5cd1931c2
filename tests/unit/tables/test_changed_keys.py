"""One map of changed keys for all tables of a shard (`tables.keys.ChangedKeys`: key -> bitmask
of the tables that changed it): each table's changes are the ones a set per table held, a delta
carries exactly them, and base + deltas (saves failed or not) restore the live state."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.keys import ChangedKeys, keys_of
from tables.shard import ShardState
from tables.spec import PendingSnapshot
from tests.unit.tables.test_shared_keys import KEYS, Tables, apply, begin, held

op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["first", "second"]), st.sampled_from(KEYS)),
    st.tuples(st.just("del"), st.sampled_from(["first", "second"]), st.sampled_from(KEYS)),
    st.tuples(
        st.just("add"),
        st.sampled_from(["fine", "coarse"]),
        st.sampled_from(KEYS),
        st.integers(min_value=0, max_value=200),
    ),
    st.tuples(st.just("advance")),
    # A snapshot, then its save confirmed (True) or failed (False: its changes stay unsaved).
    st.tuples(st.just("snapshot"), st.booleans()),
)


def values(state: ShardState) -> dict[str, Any]:
    out: dict[str, Any] = {name: dict(part.data) for name, part in state.plain.items()}
    for name, wpart in state.windowed.items():
        out[name] = (dict(wpart.open), dict(wpart.closed), wpart.max_event_ms)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=60))
def test_each_tables_changes_are_those_a_set_per_table_held_and_deltas_restore_the_state(
    ops: list[tuple[Any, ...]],
) -> None:
    tables = Tables()
    state = tables.state()
    plain = {"first": tables.first, "second": tables.second}
    windowed = {"fine": tables.fine, "coarse": tables.coarse}
    names = ["first", "second", "fine", "coarse"]
    # The reference: a set per table of the keys changed since the last snapshot, and the
    # changes taken by snapshots whose save was not confirmed.
    model: dict[str, set[Any]] = {name: set() for name in names}
    unsaved: dict[str, set[Any]] = {name: set() for name in names}
    # Many keys no step touches, saved in a base: the changes then travel in deltas (a delta
    # outweighing its base would be written as a base).
    begin(state, "site-9")
    for filler in range(1_000, 1_300):
        tables.first[filler] = filler
    base = state.snapshot()
    assert base is not None and not base.delta
    state.saved(base)
    chain = [base.data]
    for step in ops:
        if step[0] in ("put", "del", "add"):
            if apply(state, plain, windowed, step):
                model[step[1]].add(step[2])
        elif step[0] == "advance":
            before = held(state)
            apply(state, plain, windowed, step)
            for name in ("fine", "coarse"):
                model[name] |= before[name] - held(state)[name]
        else:
            for name in names:
                unsaved[name] |= model[name]
                model[name] = set()
            pending = state.snapshot()
            if pending is not None and step[1]:
                if not pending.delta:
                    chain = []
                chain.append(pending.data)
                state.saved(pending)
                unsaved = {name: set() for name in names}
        for name in ("first", "second"):
            assert state.plain[name].changed == model[name]
        # A close marks every key of the windows it takes (some still held in other windows
        # of the table), as the set per table did: the model's keys are the least it holds.
        for name in ("fine", "coarse"):
            assert model[name] <= state.windowed[name].changed
    final: PendingSnapshot | None = state.snapshot(full=not chain)
    if final is not None:  # None: nothing changed since the last saved snapshot
        chain = [final.data] if not final.delta else [*chain, final.data]
    again = tables.state()
    again.restore([chain], lambda _pk: True)
    assert values(again) == values(state)
    assert held(again) == held(state)


@given(st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 5)), max_size=40))
def test_marks_are_the_union_of_the_members_sets_and_forget_drops_one_member(
    marks: list[tuple[Any, int]],
) -> None:
    changes = ChangedKeys()
    bits = [changes.join() for _ in range(6)]
    sets: list[set[Any]] = [set() for _ in bits]
    for key, member in marks:
        changes.mark(key, bits[member])
        sets[member].add(key)
    for member, bit in enumerate(bits):
        assert keys_of(changes.marks, bit) == sets[member]
    changes.forget(bits[2])
    assert keys_of(changes.marks, bits[2]) == set()
    assert keys_of(changes.marks, bits[3]) == sets[3]
    # No key is kept without a mark.
    assert set(changes.marks) == set().union(*(s for i, s in enumerate(sets) if i != 2))
    into: dict[Any, int] = {}
    changes.take_into(into)
    assert changes.marks == {}
    assert keys_of(into, bits[0]) == sets[0]
