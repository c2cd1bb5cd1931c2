"""The one-reading and empty forms of `SeriesAcc` (7 and 0 doubles) against the accumulator
the full form replaced (`StructAcc`, kept verbatim in `test_series_acc`): a window started
from `SeriesAcc.empty()` and fed as a table feeds it (using what `+` and `merge` return) has
the same rollups to the bit, the same stored bytes and the same counts as the full form and
the Struct, whatever the readings, interval cuts and merges; a stored form reads back as the
form it was made from and goes on alike."""

from __future__ import annotations

import itertools
import struct

import msgspec
from hypothesis import assume, example, given
from hypothesis import strategies as st

from core.clock import ManualClock
from domain.series import SERIES_METRICS, rollup_of
from domain.series_acc import SeriesAcc
from domain.telemetry import Reading, decode_reading, shared_id
from tables.plain import PlainPartition
from tables.shard import ShardState
from tables.snapshot import _encoder, encode_state
from tables.table import Table
from tests.unit.domain.test_series_acc import (
    START_MS,
    StructAcc,
    finite,
    same_rollup,
    struct_rollup_of,
)

power = st.one_of(st.just(-0.0), st.just(0.0), finite.map(abs))
"""`power_w >= 0` admits -0.0: its sum from 0.0 is 0.0, which the one-reading form must give."""


@st.composite
def readings(draw: st.DrawFn) -> list[Reading]:
    """One asset's readings in increasing time, any finite values, zeros of both signs."""
    out: list[Reading] = []
    ts = START_MS
    # Few readings often: one reading is the form under test.
    count = st.one_of(st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=30))
    for _ in range(draw(count)):
        ts += draw(st.integers(min_value=1, max_value=90_000))
        out.append(
            Reading(
                "site-1",
                "b-1",
                "r-1",
                "lamp-1",
                ts,
                draw(power),
                draw(finite),
                draw(finite),
                draw(finite),
                draw(st.booleans()),
                draw(st.integers(min_value=0, max_value=100)),
            )
        )
    return out


def intervals(rs: list[Reading], cuts: list[int]) -> list[list[Reading]]:
    bounds = sorted({0, len(rs), *(c for c in cuts if c < len(rs))})
    return [rs[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def same_acc(new: SeriesAcc, old: StructAcc) -> None:
    """The same accumulator: stored bytes, counts, latest time, rollup to the bit."""
    assert _encoder.encode(new) == msgspec.msgpack.encode(old)
    assert (new.count, new.on_count, new.last_ts_ms) == (old.count, old.on_count, old.last_ts_ms)
    if old.count:
        same_rollup(rollup_of("lamp-1", 0, 60_000, new), struct_rollup_of("lamp-1", 0, 60_000, old))


@given(readings(), st.lists(st.integers(min_value=0, max_value=30), max_size=8))
def test_windows_started_empty_give_the_old_accumulators_rollups_bytes_and_hours(
    rs: list[Reading], cuts: list[int]
) -> None:
    news: list[SeriesAcc] = []
    olds: list[StructAcc] = []
    for part in intervals(rs, cuts):
        new, old = SeriesAcc.empty(), StructAcc()
        for r in part:
            new = new + r  # what a windowed table does: it stores what `+` returns
            old + r
            same_acc(new, old)
            # One reading: its 7 values; more: the full 23, updated in place from then on.
            assert len(new) == (7 if old.count == 1 else 23)
        news.append(new)
        olds.append(old)
    hour_want = StructAcc()
    for old in olds:
        hour_want.merge(old)
    # Merged into an empty accumulator of either form (`merge` changes only its own).
    for start in (SeriesAcc(), SeriesAcc.empty()):
        hour = start
        for new in news:
            hour = hour.merge(new)
        same_acc(hour, hour_want)
    # The pending hour as the series agent keeps it: the first closed interval itself, then
    # each later one merged into what the merge returned.
    hour_new: SeriesAcc | None = None
    hour_old = StructAcc()
    for new, old in zip(news, olds, strict=True):
        if new.count == 0:
            continue
        hour_new = new if hour_new is None else hour_new.merge(new)
        hour_old.merge(old)
        same_acc(hour_new, hour_old)


@given(readings(), readings())
def test_a_stored_accumulator_reads_back_as_its_form_and_goes_on_like_the_old_one(
    first: list[Reading], later: list[Reading]
) -> None:
    old = StructAcc()
    for r in first:
        old + r
    back = SeriesAcc.from_snapshot_form(list(msgspec.structs.astuple(old)))
    same_acc(back, old)
    assert len(back) == (7 if old.count == 1 else 23)
    last = old.last_ts_ms
    for r in later:
        after = msgspec.structs.replace(r, ts_ms=last + r.ts_ms - START_MS + 1)
        back = back + after
        old + after
        same_acc(back, old)


@example(at=0, value=-0.0)  # one reading of -0.0 sums to 0.0, never to -0.0
@given(st.integers(min_value=0, max_value=15), finite)
def test_a_count_of_one_that_no_one_reading_gives_reads_back_full_and_stores_the_same(
    at: int, value: float
) -> None:
    one = SeriesAcc.empty() + Reading(
        "site-1", "b-1", "r-1", "lamp-1", START_MS, 0.0, 5.0, 5.0, 5.0, True, 5
    )
    form = one.snapshot_form()
    assume(struct.pack("<d", value) != struct.pack("<d", form[6 + at]))
    form[6 + at] = value
    back = SeriesAcc.from_snapshot_form(form)
    assert len(back) == 23
    assert msgspec.msgpack.encode(back.snapshot_form()) == msgspec.msgpack.encode(form)


def series_shard() -> tuple[ShardState, Table[SeriesAcc]]:
    table = Table("series_fine", default=SeriesAcc.empty, value_type=SeriesAcc)
    state = ShardState([table], "shard-0", ManualClock(), 300_000)
    state.activate()
    return state, table


@given(st.lists(readings().filter(bool), min_size=1, max_size=4))
def test_a_snapshot_of_either_form_is_the_old_codes_bytes_and_restores_the_same_values(
    assets: list[list[Reading]],
) -> None:
    # The state as the Struct accumulator's code held it, and as the one-reading form does.
    old_part, new_part = PlainPartition(), PlainPartition()
    for i, rs in enumerate(assets):
        old, new = StructAcc(), SeriesAcc.empty()
        for r in rs:
            old + r
            new = new + r
        old_part.put(f"lamp-{i}", old, "site-1")
        new_part.put(f"lamp-{i}", new, "site-1")
    old_blob = encode_state("shard-0", {"series_fine": old_part}, {}, changed=None)
    assert encode_state("shard-0", {"series_fine": new_part}, {}, changed=None) == old_blob
    state, table = series_shard()
    state.restore([[old_blob]], lambda _pk: True)
    for i in range(len(assets)):
        restored = table[f"lamp-{i}"]
        assert restored == new_part.data[f"lamp-{i}"]
        assert len(restored) == len(new_part.data[f"lamp-{i}"])
    pending = state.snapshot()
    assert pending is not None
    assert pending.data == old_blob


def test_the_accumulator_holds_four_statistics_of_every_series_quantity() -> None:
    assert len(SeriesAcc().stats) == len(SeriesAcc.empty().stats) == 4 * len(SERIES_METRICS)


@given(readings().filter(bool), st.booleans())
def test_accumulators_read_back_share_their_ids_as_a_readings_do(
    rs: list[Reading], one_reading: bool
) -> None:
    old = StructAcc()
    for r in rs[:1] if one_reading else rs:
        old + r
    # Copies of the ids, as a snapshot's decoder makes for each accumulator.
    forms = [list(msgspec.structs.astuple(old)) for _ in range(2)]
    for form in forms:
        form[:3] = ["".join(list(i)) for i in form[:3]]
    first, second = (SeriesAcc.from_snapshot_form(form) for form in forms)
    assert first == second
    assert first.site_id is second.site_id
    assert first.building_id is second.building_id
    assert first.room_id is second.room_id


def test_an_id_read_back_is_the_readings_copy_and_anything_else_is_kept_as_it_is() -> None:
    reading = decode_reading(
        b'{"v":1,"site_id":"site-9","building_id":"b-9","room_id":"r-9","asset_id":"lamp-9",'
        b'"ts":"2027-01-15T08:00:00Z","power_w":1.0,"voltage_v":230.0,"current_a":0.1,'
        b'"lux":5.0,"on":true,"dim_level":50}',
        1_800_000_000_000,
    )
    assert shared_id("".join(["site-", "9"])) is reading.site_id
    not_an_id = "".join(["not an ", "id"])
    assert shared_id(not_an_id) is not_an_id
    assert shared_id("") == ""
