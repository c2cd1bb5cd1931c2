"""How late a shard's records arrive after their event time, as most of them show it."""

from __future__ import annotations

from typing import Final

LAG_SAMPLES: Final = 64
"""Records whose lag is kept: a few batches of a busy shard, many minutes of a sparse one."""


class TypicalLag:
    """The median of the last ``LAG_SAMPLES`` lags (arrival minus event time, ms) added.

    A quiet shard's idle clock keeps this lag: the event time it reaches is at most ``now -
    typical lag``. The clock itself follows the newest event time, which one device stamping
    ahead (within the skew the decoder allows) can set; during a backfill every honest reading
    is far behind its arrival, so that device's lead plus the quiet time could pass the grace
    of the others' windows. A median is what most devices show, whatever a few do."""

    __slots__ = ("_next", "_samples")

    def __init__(self) -> None:
        self._samples: list[int] = []
        self._next = 0

    def add(self, lag_ms: int) -> None:
        samples = self._samples
        if len(samples) < LAG_SAMPLES:
            samples.append(lag_ms)
            return
        samples[self._next] = lag_ms
        self._next = (self._next + 1) % LAG_SAMPLES

    def median_ms(self) -> int | None:
        """The median lag (the lower middle of an even count), None before any record."""
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        return ordered[(len(ordered) - 1) // 2]
