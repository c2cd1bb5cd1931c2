"""A small app over the tables API for the table tests: an hourly kWh table per asset, a
plain count per site, an injected clock, and helpers to feed, advance and snapshot a shard."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.clock import ManualClock
from core.event import Event
from tables.shard import ShardState
from tables.table import Table, WindowedTable
from tables.windows import WindowRange

HOUR = 3_600_000
GRACE = 60_000
IDLE = 300_000


@dataclass
class KwhReading:
    site: str
    asset: str
    ts_ms: int
    kwh: float


Closed = tuple[str, WindowRange, float]


class KwhTables:
    """An hourly kWh table per asset, a plain count per site, and the agent feeding both."""

    def __init__(self, *, expires_ms: int | None = None) -> None:
        self.counts = Table("counts", default=int, value_type=int)
        self.hourly_table = Table("hourly", default=float, value_type=float)
        self.hourly: WindowedTable[float] = self.hourly_table.tumbling(
            HOUR, grace_ms=GRACE, expires_ms=expires_ms
        ).relative_to_field(lambda r: r.ts_ms)
        self.hourly.on_window_close(self.report)

    @staticmethod
    def report(key: Any, window: WindowRange, value: Any) -> Iterator[Closed]:
        yield (key, window, value)

    def tables(self) -> list[Table[Any]]:
        return [self.counts, self.hourly_table]

    def agent(self, r: KwhReading) -> None:
        self.counts[r.site] += 1
        self.hourly[r.asset] += r.kwh


def state_of(app: KwhTables, clock: ManualClock, shard: str = "shard-0") -> ShardState:
    return ShardState(app.tables(), shard, clock, IDLE)


def begin(state: ShardState, pk: str, arrival_ms: int = 0, value: Any = None) -> None:
    state.begin(Event(state.shard_id, 0, 0, pk, arrival_ms, value))


def feed(state: ShardState, app: KwhTables, r: KwhReading, arrival_ms: int | None = None) -> bool:
    begin(state, r.site, r.ts_ms if arrival_ms is None else arrival_ms, r)
    app.agent(r)
    return state.take_late()


def run(
    readings: Sequence[KwhReading], batch_sizes: Sequence[int]
) -> tuple[list[bool], list[object], bytes | None]:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    late: list[bool] = []
    events: list[object] = []
    i = 0
    sizes = iter(batch_sizes)
    while i < len(readings):
        n = next(sizes, len(readings))
        state.activate()
        for r in readings[i : i + n]:
            late.append(feed(state, app, r))
        events += state.advance()
        i += n
    return late, events, snap(state)


def snap(state: ShardState) -> bytes | None:
    """A whole snapshot (a base), marked saved."""
    pending = state.snapshot(full=True)
    if pending is None:
        return None
    state.saved(pending)
    return pending.data
