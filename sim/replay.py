"""The rules replayed over readings in time order, exactly as the agents wire them, without
Kinesis or tables: the reference for ``app.py`` and the check of the simulator's ground truth.

Per reading: usage contributions of the interval it closes (hourly and daily, at the four
usage scopes, and per minute for the site's demand), then ``rules.step``. As event time
advances: ``rules.offline_check`` for every asset every ``check_every_ms``, and every site's
minute closed once event time is ``grace_ms`` past its end goes to ``site.site_demand_step``.
At the end every window is closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import msgspec

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import DomainEvent, EnergySpike, Fault, UsageReport
from domain.rules import AssetRuleState, Limits, offline_check, step, usage_since_last
from domain.site import SiteDemandState, SiteLimits, demand_w, site_demand_step
from domain.telemetry import Reading
from domain.usage import scope_of_key, scopes_of, usage_report_of


class ReplayResult(msgspec.Struct):
    """``events``: everything emitted, in order (a fault twice: open, then cleared).
    ``faults``: the last version of each fault (what the command model keeps)."""

    events: list[DomainEvent]
    faults: list[Fault]
    spikes: list[EnergySpike]
    usage: list[UsageReport]


def replay(
    readings: Iterable[Reading],
    limits_of: Callable[[str, str], Limits],
    site_limits_of: Callable[[str], SiteLimits | None],
    *,
    asset_counts: Mapping[str, int] | None = None,
    end_ms: int | None = None,
    windows_ms: tuple[int, ...] = (HOUR_MS, DAY_MS),
    check_every_ms: int = 300_000,
    grace_ms: int = 600_000,
) -> ReplayResult:
    """Apply the rules to ``readings`` (time order). ``limits_of(asset_id, site_id)`` and
    ``site_limits_of(site_id)`` come from the registry; ``asset_counts`` (scope key -> assets,
    ``usage.asset_counts``) sets usage coverage. ``end_ms``: event time the run ends at
    (offline checks run up to it). Offline faults do not depend on ``check_every_ms``
    (``offline_check`` dates them from the last reading), only how soon they open."""
    states: dict[str, AssetRuleState] = {}
    limits_by_asset: dict[str, Limits] = {}
    sums: dict[tuple[str, int, int], tuple[float, int]] = {}
    minutes: dict[tuple[str, int], float] = {}
    site_states: dict[str, SiteDemandState] = {}
    events: list[DomainEvent] = []
    next_check_ms: int | None = None
    scope_keys: dict[str, list[str]] = {}

    def close_minutes(until_ms: int) -> None:
        due = sorted((m, site) for site, m in minutes if m + MINUTE_MS <= until_ms)
        for minute_ms, site_id in due:
            wh = minutes.pop((site_id, minute_ms))
            site_limits = site_limits_of(site_id)
            if site_limits is None:
                continue
            site_states[site_id], spikes = site_demand_step(
                site_states.get(site_id),
                site_id=site_id,
                minute_start_ms=minute_ms,
                demand_w=demand_w(wh),
                limits=site_limits,
            )
            events.extend(spikes)

    def check_offline(now_ms: int) -> None:
        for asset_id, state in states.items():
            after, new = offline_check(state, now_ms, limits_by_asset[asset_id])
            if new:
                states[asset_id] = after
                events.extend(new)

    def advance(now_ms: int) -> None:
        nonlocal next_check_ms
        if next_check_ms is None:
            next_check_ms = now_ms - now_ms % check_every_ms + check_every_ms
        while next_check_ms <= now_ms:
            check_offline(next_check_ms)
            close_minutes(next_check_ms - grace_ms)
            next_check_ms += check_every_ms

    for reading in readings:
        advance(reading.ts_ms)
        asset_id = reading.asset_id
        limits = limits_by_asset.get(asset_id)
        if limits is None:
            limits = limits_by_asset[asset_id] = limits_of(asset_id, reading.site_id)
        before = states.get(asset_id)
        keys = scope_keys.get(asset_id)
        if keys is None:
            scopes = scopes_of(reading.site_id, reading.building_id, reading.room_id, asset_id)
            keys = scope_keys[asset_id] = [scope.key for scope in scopes]
        for window_ms in windows_ms:
            for start_ms, wh, covered_ms in usage_since_last(before, reading, limits, window_ms):
                for scope_key in keys:
                    key = (scope_key, window_ms, start_ms)
                    old_wh, old_covered = sums.get(key, (0.0, 0))
                    sums[key] = (old_wh + wh, old_covered + covered_ms)
        for start_ms, wh, _ in usage_since_last(before, reading, limits, MINUTE_MS):
            key2 = (reading.site_id, start_ms)
            minutes[key2] = minutes.get(key2, 0.0) + wh
        after, new = step(before, reading, limits)
        if after is not before:
            states[asset_id] = after
            events.extend(new)
    if end_ms is not None:
        advance(end_ms)
        check_offline(end_ms)
    close_minutes(2**62)

    usage = [
        usage_report_of(
            scope_of_key(key),
            window_start_ms=start_ms,
            window_ms=window_ms,
            wh=wh,
            covered_ms=covered_ms,
            asset_count=(asset_counts or {}).get(key, 1),
        )
        for (key, window_ms, start_ms), (wh, covered_ms) in sums.items()
    ]
    faults: dict[str, Fault] = {}
    for event in events:
        if isinstance(event, Fault):
            faults[event.event_id] = event
    spikes = [e for e in events if isinstance(e, EnergySpike)]
    return ReplayResult(events, list(faults.values()), spikes, usage)
