"""Time, in integer milliseconds. Event time and wall time are both `int` ms since the epoch;
code that needs "now" takes a `Clock` argument so tests can drive it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

SECOND_MS: Final = 1_000
MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000

Clock = Callable[[], int]
"""Returns the current time in ms since the epoch."""


def wall_clock_ms() -> int:
    """Wall-clock time in ms since the epoch."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A `Clock` that moves only when told: for tests, simulations and benchmarks."""

    def __init__(self, now_ms: int = 0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        """Move on by `ms`; returns the new time."""
        self.now_ms += ms
        return self.now_ms
