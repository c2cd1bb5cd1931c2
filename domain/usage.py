"""Usage energy: how an interval between two readings of an asset becomes watt-hours per
window, and how those add up at every level (asset, room, building, site), hourly and daily.

Energy of the interval ``[t1, t2)`` between consecutive readings of an asset (nothing when
``t2 - t1 > max_gap_ms``: a gap lowers coverage, it never invents energy):

- with a cumulative counter on both readings (telemetry v2 ``energy_wh``) that did not go
  down: exactly the counter delta. Its split across a window bound assumes the power stepped
  once, from the first reading's power to the second's, at the time that makes the energy
  match the delta (dimming and switching are steps); when no such time exists in the interval
  (power steady, or noise), the delta is split in proportion to time. A counter that went down
  was reset (driver replaced, power cycle) or rolled over: that one interval falls back to the
  estimator below, and the next resumes from the new value.
- otherwise the trapezoid estimate ``(p1 + p2) / 2 * (t2 - t1)``, power linear between the two
  readings. Against sample-and-hold (left rectangle) it halves the worst error of a dim or
  on/off step between samples and has no bias towards either reading (see docs/detection.md).

Each asset interval adds the same ``(wh, covered_ms)`` to four scopes: the asset, its room, its
building and its site. A windowed table keyed by ``UsageScope.key`` sums them; when a window
closes, ``usage_report_of`` turns the sum into a ``UsageReport`` whose coverage is relative to
the number of assets the scope has, so a silent asset lowers the room's coverage instead of
silently counting as zero energy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import msgspec

from core.clock import HOUR_MS
from domain.events import UsageLevel, UsageReport
from domain.rules.limits import DEFAULT_WINDOW_MS, AssetRuleState, Limits
from domain.telemetry import Reading

USAGE_LEVELS: tuple[UsageLevel, ...] = ("asset", "room", "building", "site")
_SEP = "|"


class UsageScope(msgspec.Struct, frozen=True, gc=False):
    """What a usage sum is about. Ids below ``level`` are empty."""

    level: UsageLevel
    site_id: str
    building_id: str = ""
    room_id: str = ""
    asset_id: str = ""

    @property
    def key(self) -> str:
        """A table key: ``<level>|<site>|<building>|<room>|<asset>``."""
        return _SEP.join((self.level, self.site_id, self.building_id, self.room_id, self.asset_id))


def scope_of_key(key: str) -> UsageScope:
    """The inverse of ``UsageScope.key``."""
    level, site_id, building_id, room_id, asset_id = key.split(_SEP)
    if level not in USAGE_LEVELS:
        raise ValueError(f"not a usage scope key: {key!r}")
    return UsageScope(level, site_id, building_id, room_id, asset_id)


def scopes_of(site_id: str, building_id: str, room_id: str, asset_id: str) -> list[UsageScope]:
    """The four scopes an asset's energy counts in: asset, room, building, site."""
    return [
        UsageScope("asset", site_id, building_id, room_id, asset_id),
        UsageScope("room", site_id, building_id, room_id),
        UsageScope("building", site_id, building_id),
        UsageScope("site", site_id),
    ]


def asset_counts(assets: Iterable[tuple[str, str, str, str]]) -> dict[str, int]:
    """Assets per scope key, from ``(site, building, room, asset)`` of every registered asset."""
    counts: dict[str, int] = {}
    for ids in assets:
        for scope in scopes_of(*ids):
            counts[scope.key] = counts.get(scope.key, 0) + 1
    return counts


def usage_report_of(
    scope: UsageScope,
    *,
    window_start_ms: int,
    window_ms: int,
    wh: float,
    covered_ms: int,
    asset_count: int = 1,
) -> UsageReport:
    """The report of one scope and window from its summed contributions.
    ``coverage = covered_ms / (asset_count * window_ms)``; pass the number of assets the
    registry has in the scope (the number that reported if it has none)."""
    return UsageReport(
        scope.site_id,
        scope.building_id,
        scope.room_id,
        scope.asset_id,
        window_start_ms,
        window_start_ms + window_ms,
        wh / 1000.0,
        covered_ms,
        covered_ms / (max(asset_count, 1) * window_ms),
        scope.level,
    )


def roll_up(
    reports: Iterable[UsageReport],
    *,
    window_ms: int,
    levels: Iterable[UsageLevel] = USAGE_LEVELS,
    counts: Mapping[str, int] | None = None,
) -> list[UsageReport]:
    """Asset-level reports (of ``window_ms`` or a divisor of it, e.g. hours into a day) summed
    into ``window_ms`` windows at each of ``levels``, sorted by (level, key, window).

    Without ``counts`` a scope's asset count is the number of distinct assets reported in it.
    Sums run in input order, so the same reports in the same order give the same floats.
    """
    wanted = tuple(levels)
    sums: dict[tuple[str, int], tuple[float, int]] = {}
    members: dict[str, set[str]] = {}
    for report in reports:
        if report.level != "asset":
            raise ValueError("roll_up takes asset-level reports")
        if window_ms % report.window_ms:
            raise ValueError(f"a {report.window_ms} ms report does not fit {window_ms} ms windows")
        start_ms = report.window_start_ms - report.window_start_ms % window_ms
        scopes = scopes_of(report.site_id, report.building_id, report.room_id, report.asset_id)
        for scope in scopes:
            if scope.level not in wanted:
                continue
            key = (scope.key, start_ms)
            wh, covered_ms = sums.get(key, (0.0, 0))
            sums[key] = (wh + report.kwh * 1000.0, covered_ms + report.covered_ms)
            members.setdefault(scope.key, set()).add(report.asset_id)
    out = [
        usage_report_of(
            scope_of_key(key),
            window_start_ms=start_ms,
            window_ms=window_ms,
            wh=wh,
            covered_ms=covered_ms,
            asset_count=(counts or {}).get(key, len(members[key])),
        )
        for (key, start_ms), (wh, covered_ms) in sums.items()
    ]
    out.sort(key=lambda r: (USAGE_LEVELS.index(r.level), _key_of(r), r.window_start_ms))
    return out


def _key_of(report: UsageReport) -> str:
    return _SEP.join((report.site_id, report.building_id, report.room_id, report.asset_id))


Contribution = tuple[int, float, int]
"""``(window_start_ms, wh, covered_ms)`` of one window."""


def interval_energy(
    t1_ms: int,
    p1_w: float,
    t2_ms: int,
    p2_w: float,
    *,
    e1_wh: float | None = None,
    e2_wh: float | None = None,
    max_gap_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> list[Contribution]:
    """Energy of ``[t1_ms, t2_ms)`` between readings of power ``p1_w`` and ``p2_w`` and
    counters ``e1_wh`` and ``e2_wh`` (see the module docstring), split at window bounds:
    ``(window_start_ms, wh, covered_ms)`` per window touched, in time order (epoch-aligned
    windows of ``window_ms``). Empty if ``t2_ms <= t1_ms`` or the interval is longer than
    ``max_gap_ms``. Summing these per window in time order gives the usage of the window."""
    span_ms = t2_ms - t1_ms
    if span_ms <= 0 or span_ms > max_gap_ms:
        return []
    counter = e1_wh is not None and e2_wh is not None and e2_wh >= e1_wh
    if counter:
        assert e1_wh is not None and e2_wh is not None
        total_wh = e2_wh - e1_wh
    else:
        total_wh = (p1_w + p2_w) * 0.5 * span_ms / HOUR_MS
    window_start_ms = t1_ms - t1_ms % window_ms
    if t2_ms <= window_start_ms + window_ms:
        return [(window_start_ms, total_wh, span_ms)]
    if counter:
        energy_until = _step_model(t1_ms, p1_w, t2_ms, p2_w, total_wh)
    else:
        energy_until = _linear_model(t1_ms, p1_w, t2_ms, p2_w)
    out: list[Contribution] = []
    start_ms = t1_ms
    done_wh = 0.0
    while start_ms < t2_ms:
        end_ms = min(window_start_ms + window_ms, t2_ms)
        upto_wh = total_wh if end_ms == t2_ms else energy_until(end_ms)
        out.append((window_start_ms, upto_wh - done_wh, end_ms - start_ms))
        done_wh = upto_wh
        start_ms = window_start_ms = end_ms
    return out


def _step_model(
    t1_ms: int, p1_w: float, t2_ms: int, p2_w: float, total_wh: float
) -> Callable[[int], float]:
    """Energy from ``t1_ms`` to ``t`` if power stepped once from ``p1_w`` to ``p2_w`` and the
    interval's energy is ``total_wh``; in proportion to time when no step time fits."""
    span_ms = t2_ms - t1_ms
    if p1_w != p2_w:
        step_ms = t1_ms + (total_wh * HOUR_MS - p2_w * span_ms) / (p1_w - p2_w)
        if t1_ms <= step_ms <= t2_ms:

            def stepped(t_ms: int) -> float:
                if t_ms <= step_ms:
                    return p1_w * (t_ms - t1_ms) / HOUR_MS
                return (p1_w * (step_ms - t1_ms) + p2_w * (t_ms - step_ms)) / HOUR_MS

            return stepped

    def prorata(t_ms: int) -> float:
        return total_wh * (t_ms - t1_ms) / span_ms

    return prorata


def _linear_model(t1_ms: int, p1_w: float, t2_ms: int, p2_w: float) -> Callable[[int], float]:
    slope = (p2_w - p1_w) / (t2_ms - t1_ms)

    def linear(t_ms: int) -> float:
        elapsed = t_ms - t1_ms
        return (p1_w + 0.5 * slope * elapsed) * elapsed / HOUR_MS

    return linear


def usage_since_last(
    state: AssetRuleState | None,
    reading: Reading,
    limits: Limits,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> list[Contribution]:
    """``interval_energy`` of the interval that ``reading`` closes, given the state *before*
    ``rules.step`` applies it. Empty for the first reading of an asset and for ignored
    (duplicate or out-of-order) readings."""
    if state is None:
        return []
    return interval_energy(
        state.last_ts_ms,
        state.last_power_w,
        reading.ts_ms,
        reading.power_w,
        e1_wh=state.last_energy_wh,
        e2_wh=reading.energy_wh,
        max_gap_ms=limits.max_gap_ms,
        window_ms=window_ms,
    )
