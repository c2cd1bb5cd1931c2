"""Site demand: the 1-minute demand of a site (the mean power of all its assets over the
minute) above the site's threshold, one ``EnergySpike`` (``level="site"``) per episode.

The caller sums each asset's energy per minute (``rules.usage_contributions`` with
``window_ms=MINUTE_MS``) into a tumbling table keyed by site, and hands each closed minute,
in time order, to ``site_demand_step``.
"""

from __future__ import annotations

import msgspec

from core.clock import HOUR_MS, MINUTE_MS
from domain.events import EnergySpike
from domain.rules import OpenSpike

SITE_DEMAND_RULE = "site_demand"


class SiteLimits(msgspec.Struct, frozen=True, gc=False):
    """``demand_threshold_w``: the limit of a minute's mean demand; an episode is reported if
    it lasted at least ``min_spike_ms`` (one minute by default: every minute above counts)."""

    demand_threshold_w: float
    min_spike_ms: int = MINUTE_MS


class SiteDemandState(msgspec.Struct, frozen=True, gc=False):
    """The last minute seen and the episode in progress; serialisable for snapshots."""

    last_minute_ms: int
    spike: OpenSpike | None = None


def demand_w(wh: float, minute_ms: int = MINUTE_MS) -> float:
    """Mean power (W) of ``wh`` watt-hours spread over ``minute_ms``."""
    return wh * HOUR_MS / minute_ms


def site_demand_step(
    state: SiteDemandState | None,
    *,
    site_id: str,
    minute_start_ms: int,
    demand_w: float,
    limits: SiteLimits,
    minute_ms: int = MINUTE_MS,
) -> tuple[SiteDemandState, list[EnergySpike]]:
    """Apply one closed minute of a site.

    - A minute at or before ``state.last_minute_ms`` is ignored (same state, no events).
    - An episode starts at the first minute above the threshold (``started_at_ms`` = its
      start) and ends at the first minute at or below it (``ended_at_ms`` = that minute's
      start), or at the end of the last minute seen when minutes are missing (no data is not
      demand). It is reported once, at its end, if it lasted ``min_spike_ms``; ``excess_wh``
      is the energy above the threshold, ``peak_w`` the highest minute.
    """
    if state is not None and minute_start_ms <= state.last_minute_ms:
        return state, []
    events: list[EnergySpike] = []
    spike = state.spike if state is not None else None
    if state is not None and spike is not None:
        end_ms = state.last_minute_ms + minute_ms
        if minute_start_ms > end_ms or demand_w <= spike.threshold_w:
            _close(site_id, spike, end_ms, limits, events)
            spike = None
    threshold_w = spike.threshold_w if spike is not None else limits.demand_threshold_w
    if demand_w > threshold_w:
        excess_wh = (demand_w - threshold_w) * minute_ms / HOUR_MS
        if spike is None:
            spike = OpenSpike(minute_start_ms, demand_w, excess_wh, threshold_w, SITE_DEMAND_RULE)
        else:
            spike = OpenSpike(
                spike.started_at_ms,
                max(spike.peak_w, demand_w),
                spike.excess_wh + excess_wh,
                threshold_w,
                SITE_DEMAND_RULE,
            )
    return SiteDemandState(minute_start_ms, spike), events


def _close(
    site_id: str, spike: OpenSpike, end_ms: int, limits: SiteLimits, events: list[EnergySpike]
) -> None:
    if end_ms - spike.started_at_ms < limits.min_spike_ms:
        return
    events.append(
        EnergySpike(
            site_id,
            "",
            "",
            "",
            spike.started_at_ms,
            end_ms,
            spike.peak_w,
            spike.threshold_w,
            spike.excess_wh,
            SITE_DEMAND_RULE,
            "site",
        )
    )
