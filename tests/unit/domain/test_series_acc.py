"""The array-backed `SeriesAcc` against the accumulator it replaced (a msgspec Struct with a
float field per statistic, kept here verbatim as `StructAcc`): the same rollups to the bit
and the same stored bytes, for random readings, intervals and merges."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import ManualClock
from core.errors import StateStoreError
from domain.series import TelemetryRollup, rollup_of
from domain.series_acc import SeriesAcc
from domain.telemetry import Reading
from tables.plain import PlainPartition
from tables.shard import ShardState
from tables.snapshot import _decoder, _encoder, encode_state
from tables.table import Table

START_MS = 1_800_000_000_000


class StructAcc(msgspec.Struct, gc=False, array_like=True):
    """One asset's readings in one interval (see the module docstring). `count == 0` means
    empty: its minima, maxima and lasts are meaningless until the first reading. Encoded as
    an array (`array_like`): every open window's accumulator is in each state snapshot."""

    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    count: int = 0
    on_count: int = 0
    last_ts_ms: int = 0
    power_w_sum: float = 0.0
    power_w_min: float = 0.0
    power_w_max: float = 0.0
    power_w_last: float = 0.0
    voltage_v_sum: float = 0.0
    voltage_v_min: float = 0.0
    voltage_v_max: float = 0.0
    voltage_v_last: float = 0.0
    current_a_sum: float = 0.0
    current_a_min: float = 0.0
    current_a_max: float = 0.0
    current_a_last: float = 0.0
    lux_sum: float = 0.0
    lux_min: float = 0.0
    lux_max: float = 0.0
    lux_last: float = 0.0
    dim_level_sum: int = 0
    dim_level_min: int = 0
    dim_level_max: int = 0
    dim_level_last: int = 0

    def __add__(self, reading: Reading) -> StructAcc:
        """Count `reading` (in place) and return self. The caller passes each asset's
        readings in increasing time order, so the latest is the last one added."""
        p, v, c, x, d = (
            reading.power_w,
            reading.voltage_v,
            reading.current_a,
            reading.lux,
            reading.dim_level,
        )
        if self.count == 0:
            self.site_id = reading.site_id
            self.building_id = reading.building_id
            self.room_id = reading.room_id
            self.power_w_min = self.power_w_max = p
            self.voltage_v_min = self.voltage_v_max = v
            self.current_a_min = self.current_a_max = c
            self.lux_min = self.lux_max = x
            self.dim_level_min = self.dim_level_max = d
        else:
            # Explicit comparisons: min()/max() calls cost more on the record path.
            if p < self.power_w_min:
                self.power_w_min = p
            elif p > self.power_w_max:
                self.power_w_max = p
            if v < self.voltage_v_min:
                self.voltage_v_min = v
            elif v > self.voltage_v_max:
                self.voltage_v_max = v
            if c < self.current_a_min:
                self.current_a_min = c
            elif c > self.current_a_max:
                self.current_a_max = c
            if x < self.lux_min:
                self.lux_min = x
            elif x > self.lux_max:
                self.lux_max = x
            if d < self.dim_level_min:
                self.dim_level_min = d
            elif d > self.dim_level_max:
                self.dim_level_max = d
        self.count += 1
        if reading.on:
            self.on_count += 1
        self.last_ts_ms = reading.ts_ms
        self.power_w_sum += p
        self.voltage_v_sum += v
        self.current_a_sum += c
        self.lux_sum += x
        self.dim_level_sum += d
        self.power_w_last = p
        self.voltage_v_last = v
        self.current_a_last = c
        self.lux_last = x
        self.dim_level_last = d
        return self

    def merge(self, later: StructAcc) -> StructAcc:
        """Fold in `later` (in place) and return self: the accumulator of both intervals'
        readings, `later`'s all newer than self's (its lasts win). How the hourly downsample
        is made from the closed fine intervals, one window update per reading instead of two.
        Counts, minima, maxima and lasts are exact; the sums are added per interval rather
        than per reading, so a mean may differ from the reading-by-reading one in its last
        bits."""
        if later.count == 0:
            return self
        if self.count == 0:
            self.site_id = later.site_id
            self.building_id = later.building_id
            self.room_id = later.room_id
            self.power_w_min = later.power_w_min
            self.power_w_max = later.power_w_max
            self.voltage_v_min = later.voltage_v_min
            self.voltage_v_max = later.voltage_v_max
            self.current_a_min = later.current_a_min
            self.current_a_max = later.current_a_max
            self.lux_min = later.lux_min
            self.lux_max = later.lux_max
            self.dim_level_min = later.dim_level_min
            self.dim_level_max = later.dim_level_max
        else:
            self.power_w_min = min(self.power_w_min, later.power_w_min)
            self.power_w_max = max(self.power_w_max, later.power_w_max)
            self.voltage_v_min = min(self.voltage_v_min, later.voltage_v_min)
            self.voltage_v_max = max(self.voltage_v_max, later.voltage_v_max)
            self.current_a_min = min(self.current_a_min, later.current_a_min)
            self.current_a_max = max(self.current_a_max, later.current_a_max)
            self.lux_min = min(self.lux_min, later.lux_min)
            self.lux_max = max(self.lux_max, later.lux_max)
            self.dim_level_min = min(self.dim_level_min, later.dim_level_min)
            self.dim_level_max = max(self.dim_level_max, later.dim_level_max)
        self.count += later.count
        self.on_count += later.on_count
        self.last_ts_ms = later.last_ts_ms
        self.power_w_sum += later.power_w_sum
        self.voltage_v_sum += later.voltage_v_sum
        self.current_a_sum += later.current_a_sum
        self.lux_sum += later.lux_sum
        self.dim_level_sum += later.dim_level_sum
        self.power_w_last = later.power_w_last
        self.voltage_v_last = later.voltage_v_last
        self.current_a_last = later.current_a_last
        self.lux_last = later.lux_last
        self.dim_level_last = later.dim_level_last
        return self


def struct_rollup_of(
    asset_id: str, window_start_ms: int, window_ms: int, acc: StructAcc
) -> TelemetryRollup:
    """The rollup of a closed window's accumulator (`acc.count >= 1`)."""
    n = acc.count
    # Spelled out rather than looped over SERIES_METRICS with getattr: it runs once per asset
    # and interval, on the record path.
    stats = {
        "power_w_mean": acc.power_w_sum / n,
        "power_w_min": acc.power_w_min,
        "power_w_max": acc.power_w_max,
        "power_w_last": acc.power_w_last,
        "voltage_v_mean": acc.voltage_v_sum / n,
        "voltage_v_min": acc.voltage_v_min,
        "voltage_v_max": acc.voltage_v_max,
        "voltage_v_last": acc.voltage_v_last,
        "current_a_mean": acc.current_a_sum / n,
        "current_a_min": acc.current_a_min,
        "current_a_max": acc.current_a_max,
        "current_a_last": acc.current_a_last,
        "lux_mean": acc.lux_sum / n,
        "lux_min": acc.lux_min,
        "lux_max": acc.lux_max,
        "lux_last": acc.lux_last,
        "dim_level_mean": acc.dim_level_sum / n,
        "dim_level_min": float(acc.dim_level_min),
        "dim_level_max": float(acc.dim_level_max),
        "dim_level_last": float(acc.dim_level_last),
    }
    return TelemetryRollup(
        acc.site_id,
        acc.building_id,
        acc.room_id,
        asset_id,
        window_start_ms,
        window_ms,
        n,
        acc.on_count / n,
        acc.last_ts_ms,
        stats,
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def readings(draw: st.DrawFn) -> list[Reading]:
    """One asset's readings in increasing time (as the series counts them), any finite
    values: zeros of both signs, subnormals, huge ones."""
    out: list[Reading] = []
    ts = START_MS
    for _ in range(draw(st.integers(min_value=0, max_value=40))):
        ts += draw(st.integers(min_value=1, max_value=90_000))
        out.append(
            Reading(
                "site-1",
                "b-1",
                "r-1",
                "lamp-1",
                ts,
                abs(draw(finite)),
                draw(finite),
                draw(finite),
                draw(finite),
                draw(st.booleans()),
                draw(st.integers(min_value=0, max_value=100)),
            )
        )
    return out


def same_rollup(new: TelemetryRollup, old: TelemetryRollup) -> None:
    assert msgspec.msgpack.encode(new) == msgspec.msgpack.encode(old)  # to the bit, -0.0 too


@given(readings(), st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_adding_and_merging_give_the_old_accumulators_rollups_and_stored_bytes(
    rs: list[Reading], cuts: list[int]
) -> None:
    # Cut the readings into consecutive intervals, then merge them in order (the hour).
    bounds = sorted({0, len(rs), *(c for c in cuts if c < len(rs))})
    news: list[SeriesAcc] = []
    olds: list[StructAcc] = []
    for lo, hi in itertools.pairwise(bounds):
        new, old = SeriesAcc(), StructAcc()
        for r in rs[lo:hi]:
            new + r
            old + r
        news.append(new)
        olds.append(old)
    hour_new, hour_old = SeriesAcc(), StructAcc()
    for new, old in zip(news, olds, strict=True):
        assert _encoder.encode(new) == msgspec.msgpack.encode(old)
        if new.count:
            same_rollup(
                rollup_of("lamp-1", 0, 60_000, new), struct_rollup_of("lamp-1", 0, 60_000, old)
            )
        hour_new.merge(new)
        hour_old.merge(old)
    assert _encoder.encode(hour_new) == msgspec.msgpack.encode(hour_old)
    if hour_new.count:
        same_rollup(
            rollup_of("lamp-1", 0, 3_600_000, hour_new),
            struct_rollup_of("lamp-1", 0, 3_600_000, hour_old),
        )


@given(readings())
def test_a_stored_accumulator_of_either_kind_reads_back_as_the_same_accumulator(
    rs: list[Reading],
) -> None:
    old = StructAcc()
    for r in rs:
        old + r
    decoder = _decoder("plain", SeriesAcc)
    # A plain table's section as the Struct accumulator was stored: [[(pk, key, value)], []].
    section = msgspec.msgpack.encode([[("site-1", "lamp-1", old)], []])
    (entry,) = decoder.decode(section).entries
    back = entry[2]
    assert isinstance(back, SeriesAcc)
    assert _encoder.encode(back) == msgspec.msgpack.encode(old)
    if old.count:
        same_rollup(
            rollup_of("lamp-1", 0, 60_000, back), struct_rollup_of("lamp-1", 0, 60_000, old)
        )


@pytest.mark.parametrize(
    "form",
    [
        {"count": 1},
        ["site-1", "b-1", "r-1", 1, 1, START_MS, *[0.0] * 20, 7],
        ["site-1", "b-1", 3, 1, 1, START_MS],
        ["site-1", "b-1", "r-1", 1, 1, START_MS, "60.0"],
    ],
)
def test_a_form_that_is_no_accumulator_is_refused(form: object) -> None:
    with pytest.raises(ValueError, match="series accumulator"):
        SeriesAcc.from_snapshot_form(form)


def test_a_shorter_stored_form_takes_the_defaults() -> None:
    acc = SeriesAcc.from_snapshot_form(["site-1", "b-1"])
    assert acc.snapshot_form() == ["site-1", "b-1", "", 0, 0, 0, *[0.0] * 16, 0, 0, 0, 0]


def shard_with_series(name: str = "series_fine") -> tuple[ShardState, Table[SeriesAcc]]:
    table = Table(name, default=SeriesAcc, value_type=SeriesAcc)
    state = ShardState([table], "shard-0", ManualClock(), 300_000)
    state.activate()
    return state, table


@given(readings())
def test_a_snapshot_written_with_the_struct_accumulator_restores_and_saves_the_same_bytes(
    rs: list[Reading],
) -> None:
    # The state as the Struct accumulator's code held it, and its base snapshot.
    old_part = PlainPartition()
    acc = StructAcc()
    for r in rs:
        acc + r
    old_part.put("lamp-1", acc, "site-1")
    old_blob = encode_state("shard-0", {"series_fine": old_part}, {}, changed=None)
    state, table = shard_with_series()
    state.restore([[old_blob]], lambda _pk: True)
    restored = table["lamp-1"]
    assert isinstance(restored, SeriesAcc)
    assert restored.snapshot_form() == list(msgspec.structs.astuple(acc))
    pending = state.snapshot()
    assert pending is not None
    assert pending.data == old_blob


def test_a_snapshot_whose_accumulator_cannot_be_read_is_refused_with_one_line() -> None:
    old_part = PlainPartition()
    old_part.put("lamp-1", ["site-1", "b-1", "r-1", "three", 1, START_MS], "site-1")
    blob = encode_state("shard-0", {"series_fine": old_part}, {}, changed=None)
    state, _ = shard_with_series()
    with pytest.raises(StateStoreError) as refused:
        state.restore([[blob]], lambda _pk: True)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("shard shard-0: bad table section:")
    assert "series accumulator starts with 3 ids and 3 integers" in message


@given(st.integers(min_value=0, max_value=2**53 - 1), st.integers(min_value=1, max_value=300))
def test_counts_and_the_latest_time_held_as_doubles_are_exact(ts_ms: int, n: int) -> None:
    # The accumulator is an array of doubles, its counts and latest time included: every
    # integer below 2**53 is one, so they read back as they were given.
    acc = SeriesAcc()
    old = StructAcc()
    for k in range(n):
        r = Reading("site-1", "b-1", "r-1", "lamp-1", ts_ms, 1.0, 230.0, 0.1, 5.0, k % 3 == 0, 50)
        acc += r  # `+=` counts the reading too (an array's own `+=` would extend the array)
        old + r
    assert (acc.count, acc.on_count, acc.last_ts_ms) == (old.count, old.on_count, ts_ms)
    assert len(acc) == 23
    assert _encoder.encode(acc) == msgspec.msgpack.encode(old)
