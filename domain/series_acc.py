"""The accumulator of the telemetry series (`domain.series`): one asset's readings of one
interval, as an array of doubles, in the smallest of three forms that holds them.

For each measured quantity (power, voltage, current, lux, dim level: `domain.series.
SERIES_METRICS`) it keeps the sum (for the mean), minimum, maximum and last value (the value of
the latest reading), the on count (for the on-fraction), the reading count and the latest
reading's time. A windowed table keeps one per asset and open interval, and a shard holds about
a dozen open intervals per reporting asset (the grace's worth), so its size is most of what
the series costs in memory.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Final, cast

from domain.telemetry import Reading, shared_id

_STATS: Final = 20
"""Per quantity of `domain.series.SERIES_METRICS` (power, voltage, current, lux, dim level), in
order: sum, min, max, last."""
_COUNT: Final = _STATS
_ON_COUNT: Final = _STATS + 1
_LAST_TS: Final = _STATS + 2
_ZEROS: Final = array("d", bytes(8 * (_STATS + 3)))
"""Copied by every new accumulator: an array initializer gives an exact-size buffer (from
bytes, the buffer is over-allocated by a sixteenth plus three items)."""
_IDS_AND_COUNTS: Final = 6
"""site_id, building_id, room_id, count, on_count, last_ts_ms: the head of the stored form."""
_FULL: Final = _STATS + 3
"""The length of an accumulator of any number of readings (the full form)."""
_ONE: Final = 7
"""The length of an accumulator of one reading (the one-reading form): the five quantities of
`SERIES_METRICS` in order, the on flag (1.0 or 0.0), the reading's time."""


if TYPE_CHECKING:
    _Doubles = array[float]
else:
    _Doubles = array  # not subscriptable at run time before Python 3.12


class SeriesAcc(_Doubles):
    """One asset's readings in one interval (see the module docstring). `count == 0` means
    empty: its minima, maxima and lasts are meaningless until the first reading.

    The accumulator is itself an array of C doubles, in one of three forms told by its length
    (only the ids are object fields):

    - full (23): per quantity sum, min, max, last (the 20 statistics, `stats`), then the
      reading count, the on count and the latest reading's time. `SeriesAcc()` is an empty
      one, and adding to a full accumulator updates it in place.
    - one reading (7): the reading's five quantities, its on flag and its time. At the default
      cadence (a reading a minute, one-minute intervals) every open interval holds one
      reading, and a shard holds about a dozen open intervals per asset (the grace's worth):
      7 doubles instead of 23 is 128 bytes less each.
    - empty (0): what a table starts a window from (`SeriesAcc.empty`); adding a reading
      returns a new one-reading accumulator.

    Every form answers alike: a one-reading accumulator behaves exactly as the full one that
    the same reading added to `SeriesAcc()` would (`doubles()` gives that one's 23 values:
    every sum is `0.0 + value`, as the full form's first addition computes it, so a reading's
    -0.0 sums to 0.0 in both), and adding a second reading to it first rebuilds that full
    accumulator, then adds as the full form does. So callers use what `+` and `merge` return.

    A float object is 24 bytes beside its 8 of value, a time in ms an int of 32, and an object
    holding an array 88 more than the array itself. A double holds every value exactly
    (readings are doubles; `dim_level` is an int of 0..100, and its sum stays far below 2**53,
    as do counts and times in ms), and every operation is the one the float and int fields
    had, in the same order, so rollups are the same to the bit.

    Stored in a table's snapshot (`snapshot_form`) as the array of 26 values the accumulator
    was stored as when its statistics were fields, whatever its form: the ids, the counts, the
    statistics, the `dim_level` ones as ints; `from_snapshot_form` reads that form (from
    either), as a one-reading accumulator when it is exactly one."""

    __slots__ = ("building_id", "room_id", "site_id")

    site_id: str
    building_id: str
    room_id: str

    def __new__(cls) -> SeriesAcc:
        acc = cast(SeriesAcc, array.__new__(cls, "d", _ZEROS))
        acc.site_id = acc.building_id = acc.room_id = ""
        return acc

    @classmethod
    def empty(cls) -> SeriesAcc:
        """An empty accumulator that holds no values yet: a table's default, whose first
        reading makes a one-reading accumulator (see the class docstring)."""
        acc = cast(SeriesAcc, array.__new__(cls, "d"))
        acc.site_id = acc.building_id = acc.room_id = ""
        return acc

    @property
    def count(self) -> int:  # type: ignore[override]  # an array's count(x) is of no use here
        n = len(self)
        if n == _FULL:
            return int(self[_COUNT])
        return 1 if n else 0

    @property
    def on_count(self) -> int:
        n = len(self)
        if n == _FULL:
            return int(self[_ON_COUNT])
        return int(self[5]) if n else 0

    @property
    def last_ts_ms(self) -> int:
        n = len(self)
        if n == _FULL:
            return int(self[_LAST_TS])
        return int(self[6]) if n else 0

    @property
    def stats(self) -> array[float]:
        """The 20 statistics (a copy)."""
        return array("d", self.doubles()[:_STATS])

    def doubles(self) -> array[float]:
        """The 23 values of the full form (see the class docstring): self's own when full,
        else those of the full accumulator of the same readings (a new array)."""
        n = len(self)
        if n == _FULL:
            return self
        if n == 0:
            return array("d", _ZEROS)
        return array("d", self._one_as_full())

    def _one_as_full(self) -> tuple[float, ...]:
        """A one-reading accumulator's values in the full form's order: exactly what the full
        form's first addition stores (sums from 0.0, min = max = last = the value; count 1,
        on count 1.0 or 0.0, the time)."""
        p, v, c, x, d, on, ts = self
        return (
            *(0.0 + p, p, p, p),
            *(0.0 + v, v, v, v),
            *(0.0 + c, c, c, c),
            *(0.0 + x, x, x, x),
            *(0.0 + d, d, d, d),
            1.0,
            on,
            ts,
        )

    def summary(self) -> dict[str, float]:
        """Per quantity its mean, min, max and last, by `<quantity>_<mean|min|max|last>`: a
        rollup's statistics (`count >= 1`). Spelled out rather than looped over the quantities:
        it runs once per asset and interval, on the record path."""
        n = len(self)
        if n == _ONE:
            # What the full form of this one reading (`doubles`) gives: its sums are 0.0 plus
            # the value, its count 1.
            p, v, c, x, d, _, _ = self
            return {
                "power_w_mean": (0.0 + p) / 1,
                "power_w_min": p,
                "power_w_max": p,
                "power_w_last": p,
                "voltage_v_mean": (0.0 + v) / 1,
                "voltage_v_min": v,
                "voltage_v_max": v,
                "voltage_v_last": v,
                "current_a_mean": (0.0 + c) / 1,
                "current_a_min": c,
                "current_a_max": c,
                "current_a_last": c,
                "lux_mean": (0.0 + x) / 1,
                "lux_min": x,
                "lux_max": x,
                "lux_last": x,
                "dim_level_mean": (0.0 + d) / 1,
                "dim_level_min": d,
                "dim_level_max": d,
                "dim_level_last": d,
            }
        s = self if n == _FULL else self.doubles()
        n = int(s[_COUNT])
        return {
            "power_w_mean": s[0] / n,
            "power_w_min": s[1],
            "power_w_max": s[2],
            "power_w_last": s[3],
            "voltage_v_mean": s[4] / n,
            "voltage_v_min": s[5],
            "voltage_v_max": s[6],
            "voltage_v_last": s[7],
            "current_a_mean": s[8] / n,
            "current_a_min": s[9],
            "current_a_max": s[10],
            "current_a_last": s[11],
            "lux_mean": s[12] / n,
            "lux_min": s[13],
            "lux_max": s[14],
            "lux_last": s[15],
            "dim_level_mean": s[16] / n,
            "dim_level_min": s[17],
            "dim_level_max": s[18],
            "dim_level_last": s[19],
        }

    def _full(self) -> SeriesAcc:
        """Self if full, else a new full accumulator of the same readings and ids."""
        if len(self) == _FULL:
            return self
        acc = cast(SeriesAcc, array.__new__(SeriesAcc, "d", self.doubles()))
        acc.site_id = self.site_id
        acc.building_id = self.building_id
        acc.room_id = self.room_id
        return acc

    def __repr__(self) -> str:
        return f"SeriesAcc({self.snapshot_form()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesAcc):
            return NotImplemented
        return self.snapshot_form() == other.snapshot_form()

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # mutable: never a dict key

    def __add__(self, reading: Reading) -> SeriesAcc:  # type: ignore[override]
        """The accumulator with `reading` counted: self, updated in place, when full; from an
        empty one a new one-reading accumulator, from a one-reading one a new full one. The
        caller passes each asset's readings in increasing time order, so the latest is the
        last one added."""
        n = len(self)
        if n == 0:
            one = cast(
                SeriesAcc,
                array.__new__(
                    SeriesAcc,
                    "d",
                    (
                        reading.power_w,
                        reading.voltage_v,
                        reading.current_a,
                        reading.lux,
                        reading.dim_level,
                        1.0 if reading.on else 0.0,
                        reading.ts_ms,
                    ),
                ),
            )
            one.site_id = reading.site_id
            one.building_id = reading.building_id
            one.room_id = reading.room_id
            return one
        s = self if n == _FULL else self._full()
        p, v, c, x, d = (
            reading.power_w,
            reading.voltage_v,
            reading.current_a,
            reading.lux,
            reading.dim_level,
        )
        if s[20] == 0.0:
            s.site_id = reading.site_id
            s.building_id = reading.building_id
            s.room_id = reading.room_id
            s[1] = s[2] = p
            s[5] = s[6] = v
            s[9] = s[10] = c
            s[13] = s[14] = x
            s[17] = s[18] = d
        else:
            # Explicit comparisons: min()/max() calls cost more on the record path.
            if p < s[1]:
                s[1] = p
            elif p > s[2]:
                s[2] = p
            if v < s[5]:
                s[5] = v
            elif v > s[6]:
                s[6] = v
            if c < s[9]:
                s[9] = c
            elif c > s[10]:
                s[10] = c
            if x < s[13]:
                s[13] = x
            elif x > s[14]:
                s[14] = x
            if d < s[17]:
                s[17] = d
            elif d > s[18]:
                s[18] = d
        s[20] += 1.0  # _COUNT
        if reading.on:
            s[21] += 1.0  # _ON_COUNT
        s[22] = reading.ts_ms  # _LAST_TS
        s[0] += p
        s[4] += v
        s[8] += c
        s[12] += x
        s[16] += d
        s[3] = p
        s[7] = v
        s[11] = c
        s[15] = x
        s[19] = d
        return s

    def __iadd__(self, reading: Reading) -> SeriesAcc:  # type: ignore[override]
        """`acc += reading` counts it too (an array's own `+=` would extend it)."""
        return self + reading

    def merge(self, later: SeriesAcc) -> SeriesAcc:
        """The accumulator of both intervals' readings, `later`'s all newer than self's (its
        lasts win): self, updated in place, when full, else a new full one. How the hourly
        downsample is made from the closed fine intervals, one window update per reading
        instead of two. Counts, minima, maxima and lasts are exact; the sums are added per
        interval rather than per reading, so a mean may differ from the reading-by-reading one
        in its last bits."""
        m = len(later)
        if m == 0 or (m == _FULL and later[_COUNT] == 0.0):
            return self
        s = self if len(self) == _FULL else self._full()
        # A one-reading `later` is read in the full form's order without making an array of it.
        t = later if m == _FULL else later._one_as_full()
        if s[_COUNT] == 0.0:
            s.site_id = later.site_id
            s.building_id = later.building_id
            s.room_id = later.room_id
            for i in range(1, _STATS, 4):
                s[i] = t[i]
                s[i + 1] = t[i + 1]
        else:
            for i in range(1, _STATS, 4):
                s[i] = min(s[i], t[i])
                s[i + 1] = max(s[i + 1], t[i + 1])
        s[_COUNT] += t[_COUNT]
        s[_ON_COUNT] += t[_ON_COUNT]
        s[_LAST_TS] = t[_LAST_TS]
        for i in range(0, _STATS, 4):
            s[i] += t[i]
            s[i + 3] = t[i + 3]
        return s

    def snapshot_form(self) -> list[str | int | float]:
        """The stored form: see the class docstring."""
        if len(self) == _ONE:
            # The full form's of this one reading (`doubles`), without making it: a snapshot
            # stores every open interval of every changed asset.
            p, v, c, x, d, on, ts = self
            dim = int(d)  # int(0.0 + d) too: d is finite
            return [
                self.site_id,
                self.building_id,
                self.room_id,
                1,
                int(on),
                int(ts),
                *(0.0 + p, p, p, p),
                *(0.0 + v, v, v, v),
                *(0.0 + c, c, c, c),
                *(0.0 + x, x, x, x),
                dim,
                dim,
                dim,
                dim,
            ]
        s = self.doubles()
        return [
            self.site_id,
            self.building_id,
            self.room_id,
            int(s[_COUNT]),
            int(s[_ON_COUNT]),
            int(s[_LAST_TS]),
            *s[:16],
            *(int(value) for value in s[16:_STATS]),
        ]

    @classmethod
    def from_snapshot_form(cls, form: object) -> SeriesAcc:
        """The accumulator of a stored form (`snapshot_form`; a shorter one takes the defaults
        for its missing trailing values); `ValueError` for anything else. One reading's form
        reads back as a one-reading accumulator when that holds the very same 23 values (to
        the bit), else as a full one."""
        if not isinstance(form, list) or len(form) > _IDS_AND_COUNTS + _STATS:
            raise ValueError("a series accumulator is an array of at most 26 values")
        head = form[:_IDS_AND_COUNTS]
        head += ["", "", "", 0, 0, 0][len(head) :]
        if not (all(type(i) is str for i in head[:3]) and all(type(n) is int for n in head[3:])):
            raise ValueError("a series accumulator starts with 3 ids and 3 integers")
        values = form[_IDS_AND_COUNTS:]
        if not all(type(value) in (int, float) for value in values):
            raise ValueError("a series accumulator's statistics are numbers")
        acc = cls()
        # Shared copies, as a reading's ids are: read back, each accumulator would hold its own.
        acc.site_id, acc.building_id, acc.room_id = (shared_id(i) for i in head[:3])
        acc[_COUNT], acc[_ON_COUNT], acc[_LAST_TS] = head[3:]
        acc[: len(values)] = array("d", values)
        if acc[_COUNT] == 1.0:
            one = cast(
                SeriesAcc,
                array.__new__(
                    cls, "d", (acc[3], acc[7], acc[11], acc[15], acc[19], acc[21], acc[22])
                ),
            )
            if one.doubles().tobytes() == acc.tobytes():
                one.site_id, one.building_id, one.room_id = (
                    acc.site_id,
                    acc.building_id,
                    acc.room_id,
                )
                return one
        return acc
