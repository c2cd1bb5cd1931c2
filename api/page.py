"""The operator page: server-rendered HTML with an inline SVG chart, no JavaScript.

Sections: sites -> buildings -> open faults; energy per hour per site over the last day
(an SVG line per site); spikes of the last day, newest first. Elements that tests and
scripts read carry `data-testid` / `data-*` attributes.

The page's work is bounded like an API page's: the first `PAGE_BUILDINGS` buildings (the
page says when there are more: the API lists them all), `PAGE_FAULTS` open faults of each,
the spikes of their sites, and at most `PAGE_ENERGY_ROWS` energy rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from core.clock import DAY_MS, HOUR_MS
from domain.timestamps import format_ts
from lighting.read.model import ReadModel
from lighting.read.rows import BuildingSummary, EnergyRow, FaultRow, SpikeRow

COLOURS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT, PAD, LEGEND = 860, 260, 48, 100
PAGE_BUILDINGS: Final = 100
PAGE_FAULTS: Final = 100
PAGE_SPIKES: Final = 20
PAGE_ENERGY_ROWS: Final = 10_000

STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0 12px}td,th{padding:3px 10px;text-align:left;
border-bottom:1px solid #eee}th{background:#f6f6f6}.site{margin-bottom:16px}
.ok{color:#2a7d2a}.bad{color:#b00020;font-weight:600}.muted{color:#777}
"""


def _when(ms: int) -> str:
    return format_ts(ms)[:16].replace("T", " ")


def energy_chart(rows: Sequence[EnergyRow], start_ms: int, end_ms: int) -> str:
    """One polyline per site over [start_ms, end_ms), kWh on the y axis."""
    if not rows:
        return '<p data-testid="energy-empty" class="muted">No energy reported in this period.</p>'
    top = max(r.kwh for r in rows) or 1.0
    span = max(1, end_ms - start_ms)

    def x(ms: int) -> float:
        return PAD + (ms - start_ms) / span * (WIDTH - 2 * PAD - LEGEND)

    def y(kwh: float) -> float:
        return HEIGHT - PAD - kwh / top * (HEIGHT - 2 * PAD)

    parts = [
        f'<svg data-testid="energy-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="energy per hour per site">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD - LEGEND}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="4" y="{PAD - 8}" font-size="11">kWh</text>',
        f'<text x="4" y="{PAD + 4}" font-size="11">{top:.3g}</text>',
        f'<text x="4" y="{HEIGHT - PAD + 4}" font-size="11">0</text>',
    ]
    for tick in range(start_ms - start_ms % (6 * HOUR_MS) + 6 * HOUR_MS, end_ms, 6 * HOUR_MS):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - PAD + 16}" font-size="11" '
            f'text-anchor="middle">{_when(tick)[11:]}</text>'
        )
    sites = sorted({r.site_id for r in rows})
    for index, site in enumerate(sites):
        colour = COLOURS[index % len(COLOURS)]
        points = [r for r in rows if r.site_id == site]
        path = " ".join(f"{x(r.window_start_ms + HOUR_MS // 2):.1f},{y(r.kwh):.1f}" for r in points)
        parts.append(
            f'<polyline data-site="{escape(site)}" data-points="{len(points)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{path}"/>'
        )
        for r in points:
            cx = x(r.window_start_ms + HOUR_MS // 2)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{y(r.kwh):.1f}" r="2.5"'
                f' fill="{colour}"><title>{escape(site)} {_when(r.window_start_ms)}: '
                f"{r.kwh:.3f} kWh</title></circle>"
            )
        parts.append(
            f'<text x="{WIDTH - LEGEND - PAD + 12}" y="{PAD + 14 * index}" font-size="11" '
            f'fill="{colour}">{escape(site)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _faults_table(faults: Sequence[FaultRow]) -> str:
    if not faults:
        return '<p class="ok">No open faults.</p>'
    rows = "".join(
        f'<tr data-testid="fault" data-asset="{escape(f.asset_id)}" data-code="{escape(f.code)}">'
        f"<td>{escape(f.room_id)}</td><td>{escape(f.asset_id)}</td>"
        f'<td class="bad">{escape(f.code)}</td><td>{_when(f.opened_at_ms)}</td></tr>'
        for f in faults
    )
    return (
        "<table><tr><th>room</th><th>asset</th><th>fault</th><th>open since (UTC)</th></tr>"
        f"{rows}</table>"
    )


def _spikes_table(spikes: Sequence[SpikeRow]) -> str:
    if not spikes:
        return '<p data-testid="spikes-empty" class="ok">No spikes in the last day.</p>'
    rows = "".join(
        f'<tr data-testid="spike" data-site="{escape(s.site_id)}" '
        f'data-asset="{escape(s.asset_id)}" data-started="{s.started_at_ms}">'
        f"<td>{_when(s.started_at_ms)}</td><td>{escape(s.site_id)}</td>"
        f"<td>{escape(s.asset_id or 'whole site')}</td><td>{escape(s.rule)}</td>"
        f"<td>{s.peak_w:.0f} W</td><td>{s.excess_wh:.1f} Wh</td></tr>"
        for s in spikes
    )
    return (
        "<table><tr><th>started (UTC)</th><th>site</th><th>asset</th><th>rule</th>"
        f"<th>peak</th><th>excess</th></tr>{rows}</table>"
    )


def render_page(
    now_ms: int,
    buildings: Sequence[BuildingSummary],
    faults: dict[tuple[str, str], list[FaultRow]],
    energy: Sequence[EnergyRow] | None,
    spikes: Sequence[SpikeRow],
    *,
    more_buildings: bool = False,
) -> str:
    """The whole page. `energy` None: the query model is not readable (not InfluxDB).
    `more_buildings`: the registry holds more buildings than the page shows."""
    start_ms = now_ms - now_ms % HOUR_MS + HOUR_MS - DAY_MS
    sites: dict[str, list[BuildingSummary]] = {}
    for building in buildings:
        sites.setdefault(building.site_id, []).append(building)
    site_html = []
    for site_id, site_buildings in sorted(sites.items()):
        inner = "".join(
            f'<div data-testid="building" data-site="{escape(b.site_id)}" '
            f'data-building="{escape(b.building_id)}" data-open-faults="{b.open_faults}">'
            f"<h4>{escape(b.building_id)} <span class='muted'>({b.rooms} rooms, "
            f"{b.assets} assets)</span></h4>"
            f"{_faults_table(faults.get((b.site_id, b.building_id), []))}</div>"
            for b in site_buildings
        )
        open_count = sum(b.open_faults for b in site_buildings)
        site_html.append(
            f'<section class="site" data-testid="site" data-site="{escape(site_id)}">'
            f"<h3>{escape(site_id)} <span class='{'bad' if open_count else 'ok'}'>"
            f"{open_count} open fault{'s' if open_count != 1 else ''}</span></h3>{inner}</section>"
        )
    more = (
        f'<p data-testid="more-buildings" class="muted">The first {len(buildings)} buildings '
        "are shown: <code>/api/v1/buildings</code> lists them all.</p>"
        if more_buildings
        else ""
    )
    chart = (
        energy_chart(energy, start_ms, start_ms + DAY_MS)
        if energy is not None
        else '<p class="muted">Energy needs the InfluxDB query model.</p>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>luxflow operator</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>luxflow operator page</h1><p class='muted'>as of {_when(now_ms)} UTC</p>"
        '<form method="post" action="/logout"><button>Log out</button></form>'
        f"<h2>Energy per hour per site (last day)</h2>{chart}"
        f"<h2>Recent spikes</h2>{_spikes_table(spikes)}"
        f"<h2>Sites, buildings and open faults</h2>{''.join(site_html) or '<p>No sites.</p>'}"
        f"{more}</body></html>"
    )


LOGIN_FORM: Final = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>luxflow login</title>'
    f"<style>{STYLE}</style></head><body><h1>luxflow operator page</h1>"
    '<form method="post" action="/login"><label>API token <input type="password" '
    'name="token" autocomplete="current-password"></label> <button>Open</button></form>'
    "</body></html>"
)


def operator_page(model: ReadModel, now_ms: int) -> str:
    """Read what the page shows (bounded, see the module docstring) and render it."""
    buildings_page = model.command.buildings_page(limit=PAGE_BUILDINGS)
    buildings = buildings_page.items
    faults: dict[tuple[str, str], list[FaultRow]] = {}
    for building in buildings:
        if building.open_faults:
            key = (building.site_id, building.building_id)
            faults[key] = model.command.open_faults(*key, limit=PAGE_FAULTS).items
    energy: list[EnergyRow] | None = None
    if model.energy_reader is not None:
        start = now_ms - now_ms % HOUR_MS + HOUR_MS - DAY_MS
        energy = []
        cursor: str | None = None
        while len(energy) < PAGE_ENERGY_ROWS:
            page = model.energy_reader.energy(
                "site", "1h", start, start + DAY_MS, limit=PAGE_ENERGY_ROWS, cursor=cursor
            )
            energy.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    spikes = sorted(
        (
            spike
            for site_id in sorted({b.site_id for b in buildings})
            for spike in model.command.spikes(site_id, now_ms - DAY_MS, limit=PAGE_SPIKES).items
        ),
        key=lambda s: s.started_at_ms,
        reverse=True,
    )[:PAGE_SPIKES]
    return render_page(
        now_ms,
        buildings,
        faults,
        energy,
        spikes,
        more_buildings=buildings_page.next_cursor is not None,
    )
