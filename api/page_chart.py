"""Energy per site as small multiples: one small SVG chart per site, side by side, each with
its own kWh axis from 0 to its own maximum, and all with the same time axis spanning the hours
that have data (not a fixed day, so a young deployment's two hours fill the width). Each
chart's scale is printed on it, and a table under the charts gives each site's total, so sites
of different sizes stay comparable without one flattening the others."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from core.clock import HOUR_MS
from domain.timestamps import format_ts
from lighting.read.rows import EnergyRow

CHART_W, CHART_H = 300, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 22, 28
COLOUR: Final = "#1f77b4"


def _hhmm(ms: int) -> str:
    return format_ts(ms)[11:16]


def nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (> 0): a round top
    for an axis that the data nearly fills."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _site_chart(site: str, rows: Sequence[EnergyRow], start_ms: int, end_ms: int) -> str:
    most = max(r.kwh for r in rows)
    top = nice_top(most)
    span = max(HOUR_MS, end_ms - start_ms)
    plot_w, plot_h = CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM

    def x(ms: int) -> float:
        return LEFT + (ms - start_ms) / span * plot_w

    def y(kwh: float) -> float:
        return TOP + plot_h - kwh / top * plot_h

    bar_w = max(2.0, plot_w * HOUR_MS / span - 2)
    parts = [
        f'<svg data-testid="site-energy" data-site="{escape(site)}" data-top-kwh="{top:g}" '
        f'data-max-kwh="{most!r}" '
        f'data-x-start="{start_ms}" data-x-end="{end_ms}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
        f'aria-label="energy per hour of {escape(site)}">',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="600">{escape(site)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT + plot_w}" y2="{TOP}" stroke="#eee"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="10" text-anchor="end">{top:g}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h + 4}" font-size="10" text-anchor="end">0</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h / 2 + 4}" font-size="10" '
        'text-anchor="end">kWh</text>',
        f'<text x="{LEFT}" y="{CHART_H - 8}" font-size="10">{_hhmm(start_ms)}</text>',
        f'<text x="{LEFT + plot_w}" y="{CHART_H - 8}" font-size="10" text-anchor="end">'
        f"{_hhmm(end_ms)} UTC</text>",
    ]
    points = []
    for row in rows:
        left = x(row.window_start_ms) + 1
        height = row.kwh / top * plot_h
        parts.append(
            f'<rect x="{left:.1f}" y="{y(row.kwh):.1f}" width="{bar_w:.1f}" '
            f'height="{height:.1f}" fill="{COLOUR}" fill-opacity="0.25"><title>{escape(site)} '
            f"{_hhmm(row.window_start_ms)}: {row.kwh:.3f} kWh</title></rect>"
        )
        points.append(f"{x(row.window_start_ms + HOUR_MS // 2):.1f},{y(row.kwh):.1f}")
    parts.append(
        f'<polyline data-site="{escape(site)}" data-points="{len(rows)}" fill="none" '
        f'stroke="{COLOUR}" stroke-width="2" points="{" ".join(points)}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def energy_charts(rows: Sequence[EnergyRow]) -> str:
    """Small multiples of the site rows (any order), sites by id; a note when there are none."""
    if not rows:
        return (
            '<p data-testid="energy-empty" class="muted">No closed hour yet: energy appears '
            "once an hour's window closes (the hour's end plus the grace period).</p>"
        )
    start_ms = min(r.window_start_ms for r in rows)
    end_ms = max(r.window_start_ms for r in rows) + HOUR_MS
    sites: dict[str, list[EnergyRow]] = {}
    for row in sorted(rows, key=lambda r: (r.site_id, r.window_start_ms)):
        sites.setdefault(row.site_id, []).append(row)
    charts = "".join(_site_chart(site, sites[site], start_ms, end_ms) for site in sorted(sites))
    totals = "".join(
        f'<tr data-testid="site-total" data-site="{escape(site)}"><td>{escape(site)}</td>'
        f"<td>{sum(r.kwh for r in site_rows):.2f} kWh</td><td>{len(site_rows)}</td>"
        f"<td>{max(r.kwh for r in site_rows):.3f} kWh</td></tr>"
        for site, site_rows in sorted(sites.items())
    )
    return (
        f'<div data-testid="energy-chart" class="multiples">{charts}</div>'
        '<p class="muted">Each chart has its own kWh scale (printed on it); the time axis is '
        "the same for all.</p>"
        "<table><tr><th>site</th><th>total</th><th>hours</th><th>busiest hour</th></tr>"
        f"{totals}</table>"
    )
