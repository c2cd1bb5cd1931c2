"""Site demand in the lighting app: each asset's energy summed per site and minute
(`site_minute`, a tumbling table), each minute judged once by `domain.site.site_demand_step`.

A minute is judged as soon as it is *complete*, else when its window closes after the grace:

- complete: every asset of the site this shard knows has a reading past the minute's end
  (`domain.site.SiteSources`). An asset adds energy per interval between its consecutive
  readings, which the agent takes in order (an older reading is ignored), so no known asset
  can add to the minute any more, and no contribution is negative: the demand judged is the
  one the grace would have judged. An asset that stays silent keeps its site's minutes
  waiting for the grace (its buffered readings may still come), until it is retired.
- An asset the shard does not know yet cannot be waited for. Two rules keep it from changing
  a judged minute: a site is judged early only once it has been known for the gap energy
  counts across plus the grace and a minute (every asset that reports shows up by then),
  never while the grace is boosted (a takeover: the moved sites' readings come late), and
  never while the registry holds more assets of the site than the shard knows (a registered
  asset not seen yet, e.g. just installed, may be sending its first readings late). What is
  left is an asset the registry does not hold (admitted as unknown), new to the shard, whose
  first readings arrive late, or one back after its retirement while an unknown asset makes
  up the count: its energy in minutes already judged is in its usage reports (other windows)
  and not in its site's demand; a later window of such a minute is judged once more as a
  minute already seen, that is, ignored (never counted twice).
- The sources of a site live in the `site_sources` table (in the snapshot with the assets'
  state). A snapshot from before that table is indexed again from the assets' state when the
  first reading after the restore comes.

Site limits removed mid-episode end the episode at the end of the last minute judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from core.clock import MINUTE_MS
from domain.energy import Interval
from domain.rules.limits import AssetRuleState, Limits
from domain.site import (
    KNOWN_SINCE_MS,
    SiteDemandState,
    SiteSources,
    complete_until_ms,
    demand_w,
    site_demand_step,
    site_limits_removed,
    source_moved,
)
from domain.telemetry import Reading
from domain.usage import UsageScope
from lighting.registry import RegistryCache
from streams.app import App
from tables.table import Table, WindowedTable

INDEXED: Final = ("indexed",)
"""The key of `site_sources` that says its sites were indexed (a site id is a str, never a
tuple): missing after restoring a snapshot from before the table."""


class SiteDemand:
    """The site-demand tables of `app` and what the `detect` agent calls per reading."""

    def __init__(
        self,
        app: App,
        registry: RegistryCache,
        asset_rules: Table[AssetRuleState],
        *,
        grace_ms: int,
        early: bool = True,
    ) -> None:
        """`early` False: every minute waits for its grace (the reference a test compares
        with)."""
        self._app = app
        self._registry = registry
        self._asset_rules = asset_rules
        self._grace_ms = grace_ms
        self._early = early
        self.demand = app.Table("site_demand", default=_no_site_state, value_type=SiteDemandState)
        self.sources = app.Table("site_sources", default=_no_sources, value_type=SiteSources)
        self.minute: WindowedTable[float] = (
            app.Table("site_minute", default=float, value_type=float)
            .tumbling(MINUTE_MS, grace_ms=grace_ms)
            .relative_to_field(lambda reading: reading.ts_ms)
        )
        self.minute.on_window_close(self._closed)

    def _closed(self, site_id: Any, window: tuple[int, int], wh: float) -> Iterable[object]:
        return self.judge(str(site_id), window[0], wh)

    def judge(self, site_id: str, minute_start_ms: int, wh: float) -> list[object]:
        """Judge one minute of a site (once: a minute at or before the last judged is
        ignored)."""
        demand = self.demand
        limits = self._registry.site_limits(site_id)
        held = demand.get(site_id)
        if limits is None:
            # Limits removed mid-episode: nothing would ever judge the site again, so the
            # episode in progress ends with the last minute judged rather than stay open.
            left, ended = site_limits_removed(held, site_id=site_id)
            if left is not held and left is not None:
                demand[site_id] = left
            return list(ended)
        state, spikes = site_demand_step(
            held,
            site_id=site_id,
            minute_start_ms=minute_start_ms,
            demand_w=demand_w(wh),
            limits=limits,
        )
        demand[site_id] = state
        return list(spikes)

    def add(
        self,
        before: AssetRuleState | None,
        reading: Reading,
        limits: Limits,
        interval: Interval | None,
    ) -> list[object]:
        """Add the energy of the interval `reading` closes (the one taken, in order, after
        `before`) to its site's minutes, and judge the minutes it completes."""
        ts_ms = reading.ts_ms
        site_id = reading.site_id
        minute = self.minute
        # The interval's first split: corrections move energy across an hour bound by
        # milliwatt-hours, which no demand threshold can see.
        minutes = interval.split(MINUTE_MS) if interval is not None else []
        for start_ms, wh, _ in minutes:
            minute.add(site_id, wh, at_ms=min(start_ms + MINUTE_MS, ts_ms) - 1)
        if not minutes:
            minute.advance_to(ts_ms)
        if not self._early:
            return []
        if (
            before is not None
            and before.site_id == site_id
            and before.last_ts_ms // MINUTE_MS == ts_ms // MINUTE_MS
        ):
            return []  # the asset stays in its minute: its site's counts do not change
        sources = self.sources
        if INDEXED not in sources:
            self._index()
        from_ms = None
        if before is not None:
            if before.site_id == site_id:
                from_ms = before.last_ts_ms
            else:
                self.retired(before)
        entry = sources.get(site_id)
        if entry is None:
            entry = SiteSources(ts_ms)
            source_moved(entry, None, ts_ms)
        elif not source_moved(entry, from_ms, ts_ms):
            return []
        events: list[object] = []
        warmup_ms = limits.max_gap_ms + self._grace_ms + MINUTE_MS
        until_ms = complete_until_ms(entry, ts_ms, warmup_ms)
        if (
            until_ms is not None
            and until_ms > entry.judged_until_ms
            and not self._boosted(ts_ms)
            and not self._registered_unseen(site_id, entry)
        ):
            for window, wh in minute.take_before(site_id, until_ms):
                events.extend(self.judge(site_id, window[0], wh))
            entry.judged_until_ms = until_ms
        sources[site_id] = entry
        return events

    def retired(self, state: AssetRuleState) -> None:
        """An asset leaves its site's sources (retired, or now reporting for another site)."""
        sources = self.sources
        entry = sources.get(state.site_id)
        if entry is None or not source_moved(entry, state.last_ts_ms, None):
            return
        if entry.minutes:
            sources[state.site_id] = entry
        else:
            del sources[state.site_id]  # known again (after a warm-up) when an asset returns

    def _registered_unseen(self, site_id: str, entry: SiteSources) -> bool:
        """True while the registry holds more assets of the site than the shard knows: one
        not seen yet may be a new installation whose first readings are on their way, so
        the site's minutes wait for the grace."""
        known = sum(entry.minutes.values())
        return known < self._registry.asset_count(UsageScope("site", site_id).key)

    def _boosted(self, ts_ms: int) -> bool:
        boost: Callable[[], tuple[int, int]] | None = self._app.grace_boost
        return boost is not None and ts_ms < boost()[1]

    def _index(self) -> None:
        """Index every asset of the shard by site, from its kept state (after restoring a
        snapshot taken before `site_sources` existed, or at the start: then nothing)."""
        sources = self.sources
        fresh: dict[str, SiteSources] = {}
        for _, state in self._asset_rules.items():
            entry = fresh.get(state.site_id)
            if entry is None:
                held = sources.get(state.site_id)
                since_ms = held.since_ms if held is not None else KNOWN_SINCE_MS
                entry = fresh[state.site_id] = SiteSources(since_ms)
            source_moved(entry, None, state.last_ts_ms)
        for site_id, entry in fresh.items():
            sources[site_id] = entry
        sources[INDEXED] = SiteSources(0)


def _no_site_state() -> SiteDemandState:
    raise KeyError("site_demand has no default: use .get()")


def _no_sources() -> SiteSources:
    raise KeyError("site_sources has no default: use .get()")
