"""The lag most of a shard's sources show now (arrival minus event time), and the limit that
puts on how far one record may move the event clock."""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Final

SOURCES: Final = 64
"""Sources whose latest lag is kept, the most recently seen: on a busy shard the devices of
a few batches, on a sparse one all of them."""

NO_LIMIT_MS: Final = 2**62
"""A `ClockLimit` that limits nothing (no event time known)."""


def source_id(source: str) -> int:
    """A source's id in `TypicalLag`: a crc32, the same in every process (a str hash is not),
    so a restored shard counts a source's next record as the run before the restart did."""
    return zlib.crc32(source.encode())


class TypicalLag:
    """The middle of the latest lags (in whole seconds, floored) of the last ``SOURCES``
    sources seen: one vote per source, whatever a few do or how many records each sends.

    The event clock follows the newest event time, which one device stamping ahead could set:
    the decoder bounds a stamp by its arrival only, and during a backfill every honest reading
    is far behind its arrival, so a device that many minutes fast is stamped at its arrival.
    The shard therefore lets a record move the clock only to its arrival less the typical lag
    (plus a lead), and a quiet shard's idle clock reaches at most ``now - typical lag``.

    Per source and latest, not per record: after a producer pause every honest reading
    arrives that much later, and a device fast by the pause shows the lag the others showed
    before it; a window of records would hold on to that old lag while most of it is from
    before the pause, a source's latest lag changes with its next record. Of an even count
    the upper middle: between two views the one that holds the clock back, which only
    delays the closing of windows (the other makes readings late).

    The lags are part of the shard's state (`samples`, `load`): a shard restored from its
    snapshot limits its clock as the uninterrupted run did."""

    __slots__ = ("_latest", "_sorted")

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}  # source id -> latest lag (s), least recent first
        self._sorted: list[int] = []  # the same lags, ascending: the middle without a sort

    def add(self, source: int, lag_ms: int) -> int:
        """`source` (a `source_id`) showed `lag_ms`; returns the typical lag (ms)."""
        lag_s = lag_ms // 1_000
        latest = self._latest
        ordered = self._sorted
        held = latest.pop(source, None)
        if held is not None:
            del ordered[bisect_left(ordered, held)]
        elif len(latest) >= SOURCES:
            least_recent = next(iter(latest))
            del ordered[bisect_left(ordered, latest.pop(least_recent))]
        latest[source] = lag_s
        insort(ordered, lag_s)
        return ordered[len(ordered) // 2] * 1_000

    def median_ms(self) -> int | None:
        """The typical lag (ms), None before any record."""
        ordered = self._sorted
        return ordered[len(ordered) // 2] * 1_000 if ordered else None

    def samples(self) -> list[tuple[int, int]]:
        """(source id, latest lag in s) of the sources held, least recently seen first."""
        return list(self._latest.items())

    def load(self, samples: Iterable[tuple[int, int]]) -> None:
        """Hold `samples` (as `samples` gives them; of a source given twice the later, and
        only the ``SOURCES`` most recent) instead."""
        self._latest = {}
        self._sorted = []
        for source, lag_s in samples:
            self.add(source, lag_s * 1_000)


class ClockLimit:
    """The event time the current record may move a shard's event clock to, at most: shared by
    the shard's windowed partitions and set by the shard before each record. The record's
    updates still land in the windows of its own event time; only the clock, which decides
    what is late for every other key, is held to what most sources show."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = NO_LIMIT_MS
