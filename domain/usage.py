"""Usage energy: how an interval between two readings of an asset becomes watt-hours per
window, and how those add up at every level (asset, room, building, site), hourly and daily.

Energy of the interval ``[t1, t2)`` between consecutive readings of an asset is
``domain.energy``'s: the exact counter delta where telemetry v2 carries ``energy_wh`` (its split
at a window bound modelled as one power step and refined by the readings that follow),
otherwise the trapezoid estimate ``(p1 + p2) / 2 * (t2 - t1)``, which against sample-and-hold
halves the worst error of a dim or on/off step between samples and has no bias towards either
reading (see docs/detection.md). Nothing when ``t2 - t1 > max_gap_ms``: a gap lowers coverage,
it never invents energy.

Each asset interval adds the same ``(wh, covered_ms)`` to four scopes: the asset, its room, its
building and its site. A windowed table keyed by ``UsageScope.key`` sums them; when a window
closes, ``usage_report_of`` turns the sum into a ``UsageReport`` whose coverage is relative to
the number of assets the scope has, so a silent asset lowers the room's coverage instead of
silently counting as zero energy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from domain.energy import Contribution, Interval, energy_step, trapezoid
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
    """Energy of ``[t1_ms, t2_ms)`` between two readings alone (no run before or after them):
    the counter delta when both counters are there and did not go down, with one step from
    ``p1_w`` to ``p2_w``; otherwise the trapezoid. Split into epoch-aligned windows of
    ``window_ms`` (``Interval.split``); empty if ``t2_ms <= t1_ms`` or the interval is longer
    than ``max_gap_ms``."""
    if t2_ms <= t1_ms or t2_ms - t1_ms > max_gap_ms:
        return []
    if e1_wh is None or e2_wh is None or e2_wh < e1_wh:
        return trapezoid(t1_ms, p1_w, t2_ms, p2_w).split(window_ms)
    return Interval(t1_ms, t2_ms, e2_wh - e1_wh, "step", p1_w, p2_w).split(window_ms)


def usage_since_last(
    state: AssetRuleState | None,
    reading: Reading,
    limits: Limits,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> list[Contribution]:
    """``energy_step(...).contributions(window_ms)``: the interval ``reading`` closes and any
    correction, given the state *before* ``rules.step`` applies it. Empty for the first
    reading of an asset and for ignored (duplicate or out-of-order) readings."""
    return energy_step(state, reading, limits).contributions(window_ms)
