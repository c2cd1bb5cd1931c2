"""Site demand: the 1-minute demand of a site (the mean power of all its assets over the
minute) above the site's threshold, one ``EnergySpike`` (``level="site"``) per episode.

Two thresholds, the lower applies: a fixed ``demand_threshold_w`` (``site_demand`` rule), and a
learnt one per hour of day (``site_baseline`` rule): a rolling EWMA, one update per day, of
the highest minute of that hour on days without an episode in it, times ``baseline_factor``
(at least ``baseline_min_excess_w`` above), once ``baseline_warmup_days`` days were learnt.
Hours of day are UTC: a site's hours keep their place from day to day (a DST change moves
them once, and the EWMA follows within days).

The caller sums each asset's energy per minute (``energy.energy_step``'s interval, split
with ``Interval.split(MINUTE_MS)``) into a tumbling table keyed by site, and hands each
closed minute, in time order, to ``site_demand_step``.
"""

from __future__ import annotations

import msgspec

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import EnergySpike
from domain.rules.limits import OpenSpike

SITE_DEMAND_RULE = "site_demand"
SITE_BASELINE_RULE = "site_baseline"


class SiteLimits(msgspec.Struct, frozen=True, gc=False):
    """``demand_threshold_w``: the limit of a minute's mean demand (None: no fixed limit); an
    episode is reported if it lasted at least ``min_spike_ms`` (one minute by default: every
    minute above counts). ``baseline_factor`` None turns the learnt hour-of-day limit off."""

    demand_threshold_w: float | None
    min_spike_ms: int = MINUTE_MS
    baseline_factor: float | None = None
    baseline_min_excess_w: float = 200.0
    baseline_alpha: float = 0.3
    baseline_warmup_days: int = 3


class SiteDemandState(msgspec.Struct, frozen=True, gc=False):
    """The last minute seen, the episode in progress, and the learnt baseline: ``hour_peaks``
    maps an hour of day (0-23, UTC) to ``(ewma of its peak minute W, days learnt)``;
    ``hour_start_ms`` / ``hour_peak_w`` / ``hour_spiky`` describe the hour being seen."""

    last_minute_ms: int
    spike: OpenSpike | None = None
    hour_peaks: dict[int, tuple[float, int]] = msgspec.field(default_factory=dict)
    hour_start_ms: int | None = None
    hour_peak_w: float = 0.0
    hour_spiky: bool = False


KNOWN_SINCE_MS = -(2**62)
"""``SiteSources.since_ms`` of a site rebuilt from the assets' kept state: known all along."""


class SiteSources(msgspec.Struct, gc=False):
    """The assets of a site a shard knows, counted by the minute of their latest reading
    (``minutes``: minute start -> assets), so a site's minute is *complete* once every one of
    them has a reading past its end (``complete_until_ms``): energy is added per interval
    between an asset's consecutive readings, taken in order (an older reading is ignored), so
    no known asset can add to a minute any more, and nothing takes energy away. Nothing is
    kept per asset. ``since_ms``: the reading that made the site known; ``judged_until_ms``:
    the minutes ending at or before it were judged when complete. Mutable (one per site,
    updated in place on the record path): write it back to persist it."""

    since_ms: int
    minutes: dict[int, int] = msgspec.field(default_factory=dict)
    judged_until_ms: int = KNOWN_SINCE_MS


def source_moved(
    sources: SiteSources, from_ms: int | None, to_ms: int | None, minute_ms: int = MINUTE_MS
) -> bool:
    """Move one asset of the site from the minute of ``from_ms`` (its latest reading before;
    None: new to the site) to the minute of ``to_ms`` (None: gone, e.g. retired). True when
    the counts changed (the asset entered another minute)."""
    old = None if from_ms is None else from_ms - from_ms % minute_ms
    new = None if to_ms is None else to_ms - to_ms % minute_ms
    if old == new:
        return False
    minutes = sources.minutes
    if old is not None:
        left = minutes.get(old, 0) - 1
        if left > 0:
            minutes[old] = left
        else:
            minutes.pop(old, None)
    if new is not None:
        minutes[new] = minutes.get(new, 0) + 1
    return True


def complete_until_ms(sources: SiteSources, now_ms: int, warmup_ms: int) -> int | None:
    """The time before which the site's minutes are complete (every known asset has a reading
    at or after it), or None: no asset, or the site is known for less than ``warmup_ms``
    before ``now_ms`` (an asset that reports at least every gap the energy counts across
    shows up within that gap plus the grace; until then an asset not seen yet may still
    add to a minute)."""
    if not sources.minutes or now_ms < sources.since_ms + warmup_ms:
        return None
    return min(sources.minutes)


def demand_w(wh: float, minute_ms: int = MINUTE_MS) -> float:
    """Mean power (W) of ``wh`` watt-hours spread over ``minute_ms``."""
    return wh * HOUR_MS / minute_ms


def hour_of_day(ts_ms: int) -> int:
    return (ts_ms % DAY_MS) // HOUR_MS


def site_threshold(
    hour_peaks: dict[int, tuple[float, int]], minute_start_ms: int, limits: SiteLimits
) -> tuple[float | None, str]:
    """The threshold that applies to a minute and its rule (``None``: no threshold yet)."""
    fixed_w = limits.demand_threshold_w
    factor = limits.baseline_factor
    if factor is not None:
        learnt = hour_peaks.get(hour_of_day(minute_start_ms))
        if learnt is not None and learnt[1] >= limits.baseline_warmup_days:
            baseline_w = max(learnt[0] * factor, learnt[0] + limits.baseline_min_excess_w)
            if fixed_w is None or baseline_w < fixed_w:
                return baseline_w, SITE_BASELINE_RULE
    return fixed_w, SITE_DEMAND_RULE


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
    - An episode starts at the first minute above the threshold that applies to it
      (``started_at_ms`` = its start) and ends at the first minute at or below its threshold
      (``ended_at_ms`` = that minute's start), or at the end of the last minute seen when
      minutes are missing (no data is not demand). It is confirmed at the first minute that
      brings it to ``min_spike_ms``: the open ``EnergySpike`` (``status="open"``,
      ``ended_at_ms`` None, ``peak_w`` and ``excess_wh`` so far) is emitted with that minute,
      once. Its end emits the closed version (same ``event_id``, higher ``revision``) if it
      lasted ``min_spike_ms``; ``excess_wh`` is the energy above the threshold, ``peak_w`` the
      highest minute, ``threshold_w`` and ``rule`` those of its first minute.
    - The hour-of-day baseline learns an hour's peak minute once the hour is over, unless a
      minute of it was above a threshold.
    """
    if state is not None and minute_start_ms <= state.last_minute_ms:
        return state, []
    events: list[EnergySpike] = []
    spike = state.spike if state is not None else None
    peaks, hour_start_ms, hour_peak_w, hour_spiky = (
        (state.hour_peaks, state.hour_start_ms, state.hour_peak_w, state.hour_spiky)
        if state is not None
        else ({}, None, 0.0, False)
    )
    this_hour_ms = minute_start_ms - minute_start_ms % HOUR_MS
    if hour_start_ms != this_hour_ms:
        if hour_start_ms is not None and not hour_spiky and limits.baseline_factor is not None:
            peaks = _learn(peaks, hour_start_ms, hour_peak_w, limits)
        hour_start_ms, hour_peak_w, hour_spiky = this_hour_ms, 0.0, False
    threshold_w, rule = site_threshold(peaks, minute_start_ms, limits)
    if state is not None and spike is not None:
        end_ms = state.last_minute_ms + minute_ms
        if minute_start_ms > end_ms or threshold_w is None or demand_w <= threshold_w:
            _close(site_id, spike, end_ms, limits, events)
            spike = None
    if threshold_w is not None and demand_w > threshold_w:
        hour_spiky = True
        excess_wh = (demand_w - threshold_w) * minute_ms / HOUR_MS
        if spike is None:
            spike = OpenSpike(minute_start_ms, demand_w, excess_wh, threshold_w, rule)
        else:
            spike = msgspec.structs.replace(
                spike, peak_w=max(spike.peak_w, demand_w), excess_wh=spike.excess_wh + excess_wh
            )
        covered_ms = minute_start_ms + minute_ms - spike.started_at_ms
        if not spike.confirmed and covered_ms >= limits.min_spike_ms:
            events.append(_spike_event(site_id, spike, None))
            spike = msgspec.structs.replace(spike, confirmed=True)
    else:
        hour_peak_w = max(hour_peak_w, demand_w)
    return SiteDemandState(
        minute_start_ms, spike, peaks, hour_start_ms, hour_peak_w, hour_spiky
    ), events


def site_limits_removed(
    state: SiteDemandState | None,
    *,
    site_id: str,
    min_spike_ms: int = MINUTE_MS,
    minute_ms: int = MINUTE_MS,
) -> tuple[SiteDemandState | None, list[EnergySpike]]:
    """A site whose demand limits were removed: the episode in progress ends at the end of the
    last minute judged (the closed ``EnergySpike`` if its open version was raised, or if it
    lasted ``min_spike_ms``: the default rule's, as the removed limits are not known any more);
    an unconfirmed shorter one is dropped. Without an episode: the same state, no events. The
    learnt baseline is kept, for limits that come back."""
    if state is None or state.spike is None:
        return state, []
    events: list[EnergySpike] = []
    end_ms = state.last_minute_ms + minute_ms
    spike = state.spike
    if spike.confirmed or end_ms - spike.started_at_ms >= min_spike_ms:
        events.append(_spike_event(site_id, spike, end_ms))
    return msgspec.structs.replace(state, spike=None), events


def _learn(
    peaks: dict[int, tuple[float, int]], hour_start_ms: int, peak_w: float, limits: SiteLimits
) -> dict[int, tuple[float, int]]:
    hour = hour_of_day(hour_start_ms)
    learnt = peaks.get(hour)
    out = dict(peaks)
    if learnt is None:
        out[hour] = (peak_w, 1)
    else:
        ewma_w, days = learnt
        out[hour] = (ewma_w + limits.baseline_alpha * (peak_w - ewma_w), days + 1)
    return out


def _close(
    site_id: str, spike: OpenSpike, end_ms: int, limits: SiteLimits, events: list[EnergySpike]
) -> None:
    # A spike kept in a snapshot from before onset alarms may have qualified unconfirmed:
    # its length, not the flag, decides.
    if not spike.confirmed and end_ms - spike.started_at_ms < limits.min_spike_ms:
        return
    events.append(_spike_event(site_id, spike, end_ms))


def _spike_event(site_id: str, spike: OpenSpike, ended_at_ms: int | None) -> EnergySpike:
    """The site's event of an episode: open while ``ended_at_ms`` is None, else closed there."""
    return EnergySpike(
        site_id,
        "",
        "",
        "",
        spike.started_at_ms,
        ended_at_ms,
        spike.peak_w,
        spike.threshold_w,
        spike.excess_wh,
        spike.rule,
        "site",
        status="open" if ended_at_ms is None else "closed",
    )
