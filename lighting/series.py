"""The telemetry series of the lighting app: one agent, `series`, that rolls every counted
reading into its asset's fine window (the series interval) and hour window, two tumbling
tables on event time with the app's grace; when a window closes (the same watermark, lateness
and idle rules as the usage windows: `tables.windows`) its `TelemetryRollup` is emitted
(`domain.series`). A reading too late for its windows is left out of them and counted in the
shard's late updates, but it is not a late record (no `late` dead letter): the longer usage
windows may still take it, and a dead letter of a reading they counted would be counted twice
if redriven.

A closed window's rollup is held in the table `series_closed` and emitted by an advance
callback run right after the close, rather than yielded by the close callback: outputs of a
closing window make a checkpoint due at once (so usage reports are not held back), and a
checkpoint every minute of event time would make a replay or backfill checkpoint thousands of
times. The rollups wait for the shard's own checkpoint cadence instead; a crash before it
re-closes the same windows from the last snapshot and emits the same points.

Which readings count is the rules' rule: each asset's readings in increasing time, a duplicate
or an older one skipped, and none of an asset the registry refuses. The agent keeps each
asset's latest counted time in its own table rather than reading the `detect` agent's state,
so the two agents do not depend on their order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from domain.series import HOUR_MS, SeriesAcc, TelemetryRollup, check_interval_ms, rollup_of
from domain.telemetry import Reading
from lighting.registry import RegistryCache
from streams.app import App, Topic
from streams.stream import Stream


def add_series(
    app: App,
    telemetry: Topic[Reading],
    registry: RegistryCache,
    *,
    interval_ms: int,
    grace_ms: int,
) -> None:
    """Register the `series` agent and its tables on `app` (`interval_ms` checked by
    `domain.series.check_interval_ms`; 0: no series at all)."""
    if interval_ms == 0:
        return
    check_interval_ms(interval_ms)
    # Each asset's latest counted reading time (ms): the duplicate and order gate.
    newest = app.Table("series_newest", default=int, value_type=int)
    fine = (
        app.Table("series_fine", default=SeriesAcc, value_type=SeriesAcc)
        .tumbling(interval_ms, grace_ms=grace_ms)
        .relative_to_field(lambda reading: reading.ts_ms)
    )
    hourly = (
        app.Table("series_hourly", default=SeriesAcc, value_type=SeriesAcc)
        .tumbling(HOUR_MS, grace_ms=grace_ms)
        .relative_to_field(lambda reading: reading.ts_ms)
    )

    closed = app.Table("series_closed", default=_no_rollup, value_type=TelemetryRollup)

    @fine.on_window_close
    def fine_closed(asset_id: Any, window: tuple[int, int], acc: SeriesAcc) -> Iterable[object]:
        closed[(str(asset_id), interval_ms, window[0])] = rollup_of(
            str(asset_id), window[0], interval_ms, acc
        )
        return ()

    @hourly.on_window_close
    def hour_closed(asset_id: Any, window: tuple[int, int], acc: SeriesAcc) -> Iterable[object]:
        closed[(str(asset_id), HOUR_MS, window[0])] = rollup_of(
            str(asset_id), window[0], HOUR_MS, acc
        )
        return ()

    @app.on_advance
    def emit_series(clock_ms: int) -> Iterable[object]:
        """The rollups of the windows just closed, in key order."""
        for key, rollup in closed.items():
            yield rollup
            del closed[key]

    limits = registry.limits
    newest_get = newest.get

    @app.agent(telemetry)
    async def series(stream: Stream[Reading]) -> AsyncIterator[TelemetryRollup]:
        async for reading in stream:
            asset_id = reading.asset_id
            ts_ms = reading.ts_ms
            before = newest_get(asset_id)
            if before is not None and ts_ms <= before:
                continue  # duplicate or out of order: the rules skip it, so do the series
            if limits(asset_id, reading.site_id) is None:
                continue
            # The interval first: its window ends no later than the hour's, so a reading
            # late for the hour is late for its interval too, and one late for its interval
            # changes neither (both tables' clocks see the same times).
            # A reading too late for its interval is not a late record: the usage windows
            # (longer) may still take it, and a dead letter of a reading they counted would
            # be counted again if redriven.
            if fine.add(asset_id, reading, at_ms=ts_ms, marks_late=False):
                hourly.add(asset_id, reading, at_ms=ts_ms, marks_late=False)
                newest[asset_id] = ts_ms
        return
        yield  # an agent is an async generator; this one's outputs come from its windows


def _no_rollup() -> TelemetryRollup:
    raise KeyError("series_closed has no default")
