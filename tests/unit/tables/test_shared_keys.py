"""One key -> partition-key map for the windowed tables of a shard (`tables.partition.SharedKeys`;
a plain table keeps its own): the same partition keys as a map per table, no entry kept for a
key no table holds, and a key written under two partition keys follows the later one in every
windowed table."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.event import Event
from tables.keys import MAX_SHARED_PKS
from tables.shard import ShardState
from tables.table import Table, WindowedTable

KEYS = ["a", "b", "c", ("a", 1), ("b", 2), 7]


def pk_of(key: Any) -> str:
    """Each key's one partition key, as a site id is for its assets' keys."""
    return f"site-{sum(map(ord, str(key))) % 3}"


class Tables:
    def __init__(self) -> None:
        self.first = Table("first", default=int, value_type=int)
        self.second = Table("second", default=int, value_type=int)
        self.fine_table = Table("fine", default=int, value_type=int)
        self.coarse_table = Table("coarse", default=int, value_type=int)
        self.fine: WindowedTable[int] = self.fine_table.tumbling(10, grace_ms=5)
        self.coarse: WindowedTable[int] = self.coarse_table.tumbling(40, grace_ms=0)

    def state(self) -> ShardState:
        tables = [self.first, self.second, self.fine_table, self.coarse_table]
        state = ShardState(tables, "shard-0", ManualClock(), 300_000)
        state.activate()
        return state


def begin(state: ShardState, pk: str) -> None:
    state.begin(Event("shard-0", 0, 0, pk, 0, None))


def held(state: ShardState) -> dict[str, set[Any]]:
    out = {name: set(part.data) for name, part in state.plain.items()}
    for name, wpart in state.windowed.items():
        out[name] = {k for bs in (wpart.open, wpart.closed) for b in bs.values() for k in b}
    return out


def apply(
    state: ShardState,
    plain: dict[str, Table[int]],
    windowed: dict[str, WindowedTable[int]],
    step: tuple[Any, ...],
) -> bool:
    """One generated step: put or delete a plain table's key, or add to a windowed table's,
    under the key's partition key; or advance. True when it changed a key (an advance, whose
    closes it does not count: False)."""
    if step[0] == "put":
        begin(state, pk_of(step[2]))
        plain[step[1]][step[2]] = 1
        return True
    if step[0] == "del":
        if step[2] not in plain[step[1]]:
            return False
        del plain[step[1]][step[2]]
        return True
    if step[0] == "add":
        begin(state, pk_of(step[2]))
        return windowed[step[1]].add(step[2], 1, at_ms=step[3])
    state.advance()
    return False


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
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=60))
def test_every_held_key_has_its_partition_key_and_no_other_key_has_one(
    ops: list[tuple[Any, ...]],
) -> None:
    tables = Tables()
    state = tables.state()
    plain = {"first": tables.first, "second": tables.second}
    windowed = {"fine": tables.fine, "coarse": tables.coarse}
    for step in ops:
        apply(state, plain, windowed, step)
        holding = held(state)
        windowed_keys = holding["fine"] | holding["coarse"]
        # What the maps per table held: exactly the held keys, each with its partition key.
        assert state.plain["first"].pks == {k: pk_of(k) for k in holding["first"]}
        assert state.plain["second"].pks == {k: pk_of(k) for k in holding["second"]}
        assert state.windowed["fine"].pks == {k: pk_of(k) for k in windowed_keys}
        assert state.windowed["coarse"].pks is state.windowed["fine"].pks
    # A snapshot restores the same keys under the same partition keys.
    pending = state.snapshot()
    assert pending is not None
    again = tables.state()
    again.restore([[pending.data]], lambda _pk: True)
    assert held(again) == held(state)
    assert again.plain["second"].pks == state.plain["second"].pks
    assert again.windowed["coarse"].pks == state.windowed["coarse"].pks


def test_a_key_under_two_partition_keys_goes_with_the_later_one_in_every_windowed_table() -> None:
    tables = Tables()
    state = tables.state()
    begin(state, "site-1")
    tables.first["lamp-1"] = 1
    tables.fine.add("lamp-1", 1, at_ms=3)
    begin(state, "site-2")  # the lamp moved: its readings now come under site-2
    tables.second["lamp-1"] = 2
    tables.coarse.add("lamp-1", 1, at_ms=3)
    pending = state.snapshot()
    assert pending is not None
    site_1, site_2 = tables.state(), tables.state()
    site_1.restore([[pending.data]], lambda pk: pk == "site-1")
    site_2.restore([[pending.data]], lambda pk: pk == "site-2")
    # A plain table keeps the partition key its own write remembered.
    assert held(site_1) == {"first": {"lamp-1"}, "second": set(), "fine": set(), "coarse": set()}
    assert held(site_2) == {
        "first": set(),
        "second": {"lamp-1"},
        "fine": {"lamp-1"},
        "coarse": {"lamp-1"},
    }


class SharingTables(Tables):
    """`Tables` with a plain table that shares the windowed tables' map (`Table.share_keys`)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = Table("shared", default=int, value_type=int).share_keys()

    def state(self) -> ShardState:
        tables = [self.first, self.shared, self.fine_table, self.coarse_table, self.second]
        state = ShardState(tables, "shard-0", ManualClock(), 300_000)
        state.activate()
        return state


sharing_op = st.one_of(
    op,
    st.tuples(st.just("put"), st.just("shared"), st.sampled_from(KEYS)),
    st.tuples(st.just("del"), st.just("shared"), st.sampled_from(KEYS)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(sharing_op, max_size=60))
def test_a_plain_table_that_shares_keys_has_one_entry_per_key_with_the_windowed_tables(
    ops: list[tuple[Any, ...]],
) -> None:
    tables = SharingTables()
    state = tables.state()
    plain = {"first": tables.first, "second": tables.second, "shared": tables.shared}
    windowed = {"fine": tables.fine, "coarse": tables.coarse}
    for step in ops:
        apply(state, plain, windowed, step)
        holding = held(state)
        group = holding["fine"] | holding["coarse"] | holding["shared"]
        # One map for the windowed tables and the sharing one: exactly their keys.
        assert state.plain["shared"].pks is state.windowed["fine"].pks
        assert state.windowed["fine"].pks == {k: pk_of(k) for k in group}
        assert state.plain["first"].pks == {k: pk_of(k) for k in holding["first"]}
        assert state.plain["second"].pks == {k: pk_of(k) for k in holding["second"]}
    pending = state.snapshot()
    assert pending is not None
    again = tables.state()
    again.restore([[pending.data]], lambda _pk: True)
    assert held(again) == held(state)
    assert again.plain["shared"].pks == state.plain["shared"].pks
    assert again.plain["shared"].pks is again.windowed["coarse"].pks


def test_a_key_of_a_sharing_plain_table_goes_with_its_windows_in_a_split() -> None:
    tables = SharingTables()
    state = tables.state()
    begin(state, "site-1")
    tables.shared["lamp-1"] = 1
    begin(state, "site-2")  # the lamp moved: its readings now come under site-2
    tables.fine.add("lamp-1", 1, at_ms=3)
    pending = state.snapshot()
    assert pending is not None
    site_1, site_2 = tables.state(), tables.state()
    site_1.restore([[pending.data]], lambda pk: pk == "site-1")
    site_2.restore([[pending.data]], lambda pk: pk == "site-2")
    nothing: dict[str, set[Any]] = {name: set() for name in held(site_1)}
    assert held(site_1) == nothing
    assert held(site_2) == {**nothing, "shared": {"lamp-1"}, "fine": {"lamp-1"}}


def test_the_shared_partition_keys_stay_bounded_whatever_partition_keys_arrive() -> None:
    tables = Tables()
    state = tables.state()
    for n in range(MAX_SHARED_PKS + 10):
        begin(state, f"pk-{n}")
    assert len(state._pk_intern) <= MAX_SHARED_PKS
    begin(state, "site-1")
    tables.first["a"] = 1
    begin(state, "site-1")
    tables.second["a"] = 1
    assert state.plain["first"].pks["a"] == "site-1" == state.plain["second"].pks["a"]
    assert state.plain["first"].pks["a"] is state.plain["second"].pks["a"]
