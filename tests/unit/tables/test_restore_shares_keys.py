"""A restored shard holds one object per key, as a running one does: each table's section of
a snapshot decodes its own copy of a key, and a restore makes the copies equal across tables
one again (an asset id is a key of a dozen tables and maps)."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from core.clock import ManualClock
from tables.keys import Key
from tables.partition import WindowedPartition
from tables.plain import PlainPartition
from tables.shard import ShardState
from tables.snapshot import encode_state
from tables.table import Table
from tables.windows import tumbling

HOUR_MS = 3_600_000
START_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS

ids = st.text(alphabet="abc-123", min_size=2, max_size=12)
keys: st.SearchStrategy[Key] = st.one_of(ids, st.tuples(ids, st.integers(0, 3)))


def shard() -> tuple[ShardState, Table[int], Table[int], Table[int]]:
    counts = Table("counts", default=int, value_type=int)
    newest = Table("newest", default=int, value_type=int)
    hourly = Table("hourly", default=int, value_type=int)
    hourly.tumbling(HOUR_MS, grace_ms=60_000)
    state = ShardState([counts, newest, hourly], "shard-0", ManualClock(), 300_000)
    state.activate()
    return state, counts, newest, hourly


@given(st.lists(st.tuples(keys, st.sampled_from(["site-1", "site-2"])), min_size=1, max_size=20))
def test_a_key_of_several_tables_is_one_object_after_a_restore_and_the_values_are_kept(
    written: list[tuple[Key, str]],
) -> None:
    counts, newest = PlainPartition(), PlainPartition()
    hourly = WindowedPartition()
    window = tumbling(HOUR_MS, grace_ms=60_000)
    for n, (key, pk) in enumerate(written):
        counts.put(key, n, pk)
        if n % 2:
            newest.put(key, n, pk)
        hourly.update(window, key=key, time_ms=START_MS + n, pk=pk, default=int, amount=1)
    blob = encode_state(
        "shard-0", {"counts": counts, "newest": newest}, {"hourly": hourly}, changed=None
    )
    state, _, _, _ = shard()
    state.restore([[blob]], lambda _pk: True)
    restored_counts = state.plain["counts"].data
    assert restored_counts == counts.data
    assert state.plain["newest"].data == newest.data
    (bucket,) = state.windowed["hourly"].open.values()
    (held,) = hourly.open.values()
    assert bucket == held
    one = {key: key for key in restored_counts}
    for key in [*state.plain["newest"].data, *bucket]:
        assert key is one[key]
    for pks in (state.plain["counts"].pks, state.plain["newest"].pks, state.windowed["hourly"].pks):
        assert all(key is one[key] for key in pks)


_CANON: dict[str, str] = {}


class Named(msgspec.Struct, frozen=True):
    """A value whose `shared_copy` takes its name's canonical copy (`SharedCopy`)."""

    name: str

    def shared_copy(self) -> Named:
        return Named(_CANON.setdefault(self.name, self.name))


@given(st.lists(ids, min_size=1, max_size=10))
def test_values_read_back_go_through_their_types_shared_copy_in_plain_and_windowed_tables(
    names: list[str],
) -> None:
    plain = PlainPartition()
    hourly = WindowedPartition()
    window = tumbling(HOUR_MS, grace_ms=60_000)
    for n, name in enumerate(names):
        plain.put(f"key-{n}", Named(name), "site-1")
        hourly.update(
            window, key=f"key-{n}", time_ms=START_MS, pk="site-1", default=str, value=Named(name)
        )
    blob = encode_state("shard-0", {"named": plain}, {"named_hourly": hourly}, changed=None)
    tables = [
        Table("named", default=str, value_type=Named),
        Table("named_hourly", default=str, value_type=Named),
    ]
    tables[1].tumbling(HOUR_MS, grace_ms=60_000)
    state = ShardState(tables, "shard-0", ManualClock(), 300_000)
    state.restore([[blob]], lambda _pk: True)
    (bucket,) = state.windowed["named_hourly"].open.values()
    restored = [*state.plain["named"].data.values(), *bucket.values()]
    assert sorted(v.name for v in restored) == sorted(names * 2)
    assert all(value.name is _CANON[value.name] for value in restored)
