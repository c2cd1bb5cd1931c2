"""The telemetry series of the lighting app: one agent, `series`, that rolls every counted
reading into its asset's fine window (the series interval), a tumbling table on event time
with the app's grace; when a window closes (the same watermark, lateness and idle rules as
the usage windows: `tables.windows`) its `TelemetryRollup` is emitted (`domain.series`). A
reading too late for its window is left out of it and counted in the shard's late updates,
but it is not a late record (no `late` dead letter): the longer usage windows may still take
it, and a dead letter of a reading they counted would be counted twice if redriven.

The hourly downsample is made from the closed fine windows, so a reading costs one window
update, not two. A closed fine window is final (a reading late for it is refused), so its
accumulator is merged into its asset's pending hour (`series_hour_acc`) when it closes. The
hour itself closes by a tumbling hour table (`series_hours`) that holds one small mark per
asset and hour, set by the asset's first counted reading of the hour, on the same clock as
the fine table (every counted reading moves it, `advance_to`), with the same grace: it
closes exactly when an hourly table of the readings would. It is registered after the fine
table, so in the shard's advance the fine windows close first: when an hour closes, every
fine window of it has closed (each ends no later than the hour) and been merged, late
readings within grace included, and its rollup aggregates exactly its intervals. An asset's
first fine window of a new hour can close in the same advance as the previous hour, before
that hour's mark: the previous hour is complete then (all its intervals end earlier) and is
emitted at that point; its mark then finds nothing pending.

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

from domain.series import HOUR_MS, TelemetryRollup, check_interval_ms, rollup_of
from domain.series_acc import SeriesAcc
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
    # Each asset's latest counted reading time (ms): the duplicate and order gate. Keyed by
    # the windows' asset ids and never deleted: one partition-key entry with them per asset.
    newest = app.Table("series_newest", default=int, value_type=int).share_keys()
    # Created before `hours`: the shard closes its tables' windows in creation order. A
    # window starts empty: an interval of one reading (the default cadence) then holds 7
    # doubles, not 23 (`SeriesAcc`).
    fine = (
        app.Table("series_fine", default=SeriesAcc.empty, value_type=SeriesAcc)
        .tumbling(interval_ms, grace_ms=grace_ms)
        .relative_to_field(lambda reading: reading.ts_ms)
    )
    hours = (
        app.Table("series_hours", default=int, value_type=int)
        .tumbling(HOUR_MS, grace_ms=grace_ms)
        .relative_to_field(lambda reading: reading.ts_ms)
    )
    # Each asset's pending hour: its closed fine windows of one hour, merged. Which hour is
    # told by its latest reading (`last_ts_ms`).
    pending = app.Table("series_hour_acc", default=SeriesAcc, value_type=SeriesAcc)
    closed = app.Table("series_closed", default=_no_rollup, value_type=TelemetryRollup)

    def close_hour(asset_id: str, acc: SeriesAcc) -> None:
        start = acc.last_ts_ms - acc.last_ts_ms % HOUR_MS
        closed[(asset_id, HOUR_MS, start)] = rollup_of(asset_id, start, HOUR_MS, acc)
        del pending[asset_id]

    @fine.on_window_close
    def fine_closed(asset_id: Any, window: tuple[int, int], acc: SeriesAcc) -> Iterable[object]:
        asset = str(asset_id)
        closed[(asset, interval_ms, window[0])] = rollup_of(asset, window[0], interval_ms, acc)
        hour = pending.get(asset)
        if hour is not None and hour.last_ts_ms // HOUR_MS != window[0] // HOUR_MS:
            close_hour(asset, hour)  # an earlier hour, complete: see the module docstring
            hour = None
        # The closed window's accumulator is no table's any more: it becomes the pending
        # hour's, or is merged into it.
        pending[asset] = acc if hour is None else hour.merge(acc)
        return ()

    @hours.on_window_close
    def hour_closed(asset_id: Any, window: tuple[int, int], _mark: int) -> Iterable[object]:
        asset = str(asset_id)
        hour = pending.get(asset)
        if hour is not None and hour.last_ts_ms // HOUR_MS == window[0] // HOUR_MS:
            close_hour(asset, hour)
        return ()

    @app.on_advance
    def emit_series(clock_ms: int) -> Iterable[object]:
        """The rollups of the windows just closed, in key order."""
        for key, rollup in closed.items():
            yield rollup
            del closed[key]

    limits = registry.limits
    newest_get = newest.get
    hours_clock = hours.advance_to

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
            # A reading too late for its interval is not a late record: the usage windows
            # (longer) may still take it, and a dead letter of a reading they counted would
            # be counted again if redriven.
            if fine.add(asset_id, reading, at_ms=ts_ms, marks_late=False):
                # Not late for its interval, so not late for its hour (which ends no sooner,
                # on the same clock). The hour's mark only at the asset's first reading of
                # the hour: a later one of the same hour finds it set.
                if before is None or before // HOUR_MS != ts_ms // HOUR_MS:
                    hours.add(asset_id, 1, at_ms=ts_ms, marks_late=False)
                else:
                    hours_clock(ts_ms)
                newest[asset_id] = ts_ms
        return
        yield  # an agent is an async generator; this one's outputs come from its windows


def _no_rollup() -> TelemetryRollup:
    raise KeyError("series_closed has no default")
