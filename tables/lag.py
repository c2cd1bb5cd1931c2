"""What most of a shard's recent records show (how late they arrive after their event time,
and the event time itself), and the limit that puts on how far one record may move the event
clock: to its arrival less the typical lag, and to the middle of the last records' event
times, plus a lead."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from typing import Final

LAG_SAMPLES: Final = 64
"""Records whose lag is kept: a few batches of a busy shard, many minutes of a sparse one."""
RECENT_SAMPLES: Final = 8
"""The newest of them, whose median answers first when every record's lag grows at once."""

NO_LIMIT_MS: Final = 2**62
"""A `ClockLimit` that limits nothing (no event time known)."""


class TypicalLag:
    """The lag (arrival minus event time) most recent records show: the larger of the medians
    of the last ``LAG_SAMPLES`` and of the last ``RECENT_SAMPLES`` lags added, kept in whole
    seconds (floored): a lead is minutes, and the snapshot carries them small.

    A median is what most devices show, whatever a few do. The recent one follows a lag that
    grows for every device at once (a producer that pauses in a backfill: from then on all
    readings arrive that much later), which the long one would follow only after half its
    samples, holding on to the old lag the while, and a fast device's lag can be the old
    lag. The larger of the two is the cautious choice: a clock held back closes windows
    later, a clock let ahead makes readings late. The event clock follows the newest
    event time, which one device stamping ahead (within the skew the decoder allows of its
    arrival) could set: during a backfill every honest reading is far behind its arrival, so
    that device's lead would pass the grace of the others' windows. The shard therefore lets
    a record move the clock only to its arrival less the typical lag (plus a lead), and a
    quiet shard's idle clock reaches at most ``now - typical lag``.

    The samples are part of the shard's state (`samples`, `load`): a shard restored from its
    snapshot limits its clock as the uninterrupted run did."""

    __slots__ = ("_next", "_ring", "_sorted")

    def __init__(self) -> None:
        self._ring: list[int] = []  # in arrival order, oldest at `_next` once full
        self._sorted: list[int] = []  # the same lags, ascending: the median without a sort
        self._next = 0

    def add(self, lag_ms: int) -> int:
        """Hold `lag_ms` (the oldest held goes once ``LAG_SAMPLES`` are); returns the median
        (ms)."""
        lag_s = lag_ms // 1_000
        ring = self._ring
        ordered = self._sorted
        if len(ring) < LAG_SAMPLES:
            ring.append(lag_s)
        else:
            index = self._next
            del ordered[bisect_left(ordered, ring[index])]
            ring[index] = lag_s
            self._next = (index + 1) % LAG_SAMPLES
        insort(ordered, lag_s)
        return self._typical_ms()

    def median_ms(self) -> int | None:
        """The typical lag (ms; each median the lower middle of an even count), None before
        any record."""
        if not self._sorted:
            return None
        return self._typical_ms()

    def _typical_ms(self) -> int:
        ordered = self._sorted
        ring = self._ring
        end = self._next or len(ring)  # just after the newest
        if len(ring) <= RECENT_SAMPLES:
            recent = ring[:]
        elif end >= RECENT_SAMPLES:
            recent = ring[end - RECENT_SAMPLES : end]
        else:  # the newest wrapped round to the start of the ring
            recent = ring[:end] + ring[end - RECENT_SAMPLES :]
        recent.sort()
        return max(ordered[(len(ordered) - 1) // 2], recent[(len(recent) - 1) // 2]) * 1_000

    def samples(self) -> list[int]:
        """The lags held (s), oldest first."""
        index = self._next
        return self._ring[index:] + self._ring[:index]

    def load(self, samples: Iterable[int]) -> None:
        """Hold `samples` (s, oldest first, as `samples` gives them; only the newest
        ``LAG_SAMPLES`` are kept) instead."""
        self._ring = []
        self._sorted = []
        self._next = 0
        for lag_s in list(samples)[-LAG_SAMPLES:]:
            self.add(lag_s * 1_000)


class RecentStamps:
    """The middle of the last ``RECENT_SAMPLES`` event times (ms; the lower middle of an even
    count, so a minority stamped ahead never sets it).

    The typical lag alone can be wrong in one way: after the producer pauses, every honest
    reading arrives that much later, and a device fast by the pause shows the lag the others
    showed before it, which still fills most of the samples. Whatever the lags say, a record
    does not move the clock further past the event times of the records around it than the
    lead. Like the lags, the stamps are part of the shard's state."""

    __slots__ = ("_ring",)

    def __init__(self) -> None:
        self._ring: deque[int] = deque(maxlen=RECENT_SAMPLES)

    def add(self, stamp_ms: int) -> int:
        """Hold `stamp_ms` (the oldest held goes); returns the middle of those held."""
        ring = self._ring
        ring.append(stamp_ms)
        ordered = sorted(ring)
        return ordered[(len(ordered) - 1) // 2]

    def samples(self) -> list[int]:
        """The event times held, oldest first."""
        return list(self._ring)

    def load(self, samples: Iterable[int]) -> None:
        """Hold `samples` (oldest first; only the newest ``RECENT_SAMPLES`` are kept)."""
        self._ring = deque(samples, maxlen=RECENT_SAMPLES)


class ClockLimit:
    """The event time the current record may move a shard's event clock to, at most: shared by
    the shard's windowed partitions and set by the shard before each record. The record's
    updates still land in the windows of its own event time; only the clock, which decides
    what is late for every other key, is held to what most records show."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = NO_LIMIT_MS
