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

HORIZON_MS: Final = 30 * 60_000
"""A source whose latest record arrived this long before the current record's no longer
votes: it has left the shard (a gateway that uploaded its buffer and went quiet, a site that
moved, the sibling's devices after a split). Without it, on a shard with fewer live sources
than ``SOURCES`` nothing new ever pushes such votes out, and their lag holds the clock back
for good. Longer than any grace, so a producer pause that changes no output changes no vote;
honest devices silent this long during a backfill while a fast one sends are the one case
it lets that one decide."""

_UNANCHORED: Final = -(2**62)
"""The arrival of a loaded source whose arrival was not kept, until the next record."""

NO_LIMIT_MS: Final = 2**62
"""A `ClockLimit` that limits nothing (no event time known)."""


def source_id(source: str) -> int:
    """A source's id in `TypicalLag`: a crc32, the same in every process (a str hash is not),
    so a restored shard counts a source's next record as the run before the restart did."""
    return zlib.crc32(source.encode())


class TypicalLag:
    """The middle of the latest lags (in whole seconds, floored) of the last ``SOURCES``
    sources seen within ``HORIZON_MS`` of arrival time: one vote per source, whatever a few
    do or how many records each sends.

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

    __slots__ = ("_latest", "_seen", "_sorted", "_unanchored")

    def __init__(self) -> None:
        self._latest: dict[int, int] = {}  # source id -> latest lag (s), least recent first
        self._seen: dict[int, int] = {}  # source id -> arrival (ms) of its latest record
        self._sorted: list[int] = []  # the same lags, ascending: the middle without a sort
        self._unanchored = False  # loaded without arrivals: they count from the next record

    def add(self, source: int, lag_ms: int, arrival_ms: int) -> int:
        """`source` (a `source_id`) showed `lag_ms` in a record that arrived at `arrival_ms`;
        returns the typical lag (ms). Sources seen last more than ``HORIZON_MS`` before
        `arrival_ms` are dropped first, least recently seen first (an arrival earlier than
        theirs drops nothing)."""
        lag_s = lag_ms // 1_000
        latest = self._latest
        seen = self._seen
        ordered = self._sorted
        if self._unanchored:
            self._unanchored = False
            for held_source, held_ms in seen.items():
                if held_ms == _UNANCHORED:
                    seen[held_source] = arrival_ms
        held = latest.pop(source, None)
        if held is not None:
            del ordered[bisect_left(ordered, held)]
            del seen[source]
        elif len(latest) >= SOURCES:
            self._drop(next(iter(latest)))
        stale_ms = arrival_ms - HORIZON_MS
        while seen and seen[next(iter(seen))] < stale_ms:
            self._drop(next(iter(seen)))
        latest[source] = lag_s
        seen[source] = arrival_ms
        insort(ordered, lag_s)
        return ordered[len(ordered) // 2] * 1_000

    def _drop(self, source: int) -> None:
        del self._seen[source]
        ordered = self._sorted
        del ordered[bisect_left(ordered, self._latest.pop(source))]

    def median_ms(self) -> int | None:
        """The typical lag (ms), None before any record."""
        ordered = self._sorted
        return ordered[len(ordered) // 2] * 1_000 if ordered else None

    def samples(self) -> list[tuple[int, int, int | None]]:
        """(source id, latest lag in s, arrival in ms of its latest record or None when not
        known yet) of the sources held, least recently seen first."""
        seen = self._seen
        return [
            (source, lag_s, None if seen[source] == _UNANCHORED else seen[source])
            for source, lag_s in self._latest.items()
        ]

    def load(self, samples: Iterable[tuple[int, int, int | None]]) -> None:
        """Hold `samples` (as `samples` gives them; of a source given twice the later, and
        only the ``SOURCES`` most recent) instead: nothing ages out here, the next record
        decides as it would have. An arrival of None (samples kept before arrivals were):
        that source counts as seen by the next record."""
        self._latest = {}
        self._seen = {}
        self._sorted = []
        self._unanchored = False
        for source, lag_s, arrival_ms in samples:
            if source in self._latest:
                self._drop(source)
            elif len(self._latest) >= SOURCES:
                self._drop(next(iter(self._latest)))
            self._latest[source] = lag_s
            self._seen[source] = _UNANCHORED if arrival_ms is None else arrival_ms
            insort(self._sorted, lag_s)
            self._unanchored = self._unanchored or arrival_ms is None


class ClockLimit:
    """The event time the current record may move a shard's event clock to, at most: shared by
    the shard's windowed partitions and set by the shard before each record. The record's
    updates still land in the windows of its own event time; only the clock, which decides
    what is late for every other key, is held to what most sources show."""

    __slots__ = ("ms",)

    def __init__(self) -> None:
        self.ms = NO_LIMIT_MS
