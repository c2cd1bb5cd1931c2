"""The operator page: server-rendered HTML that keeps itself current.

`/` renders every section once; a small script (`PAGE_SCRIPT`, served at `/page.js`, the only
script the page's content security policy allows) then fetches `/page/live` every
`REFRESH_MS` and swaps each section's fragment in place, so the page can stay open without a
reload. Sections: the pipeline (per shard lag and checkpoint age, dead letters per hour by
reason), what is happening now (open faults, flicker, spikes in progress), energy per site
(small multiples, `api.page_chart`), recent spikes, and the buildings with their open faults.
A per-asset telemetry chart will get its own section (`data-testid="asset-telemetry"`).

The page's work is bounded like an API page's: the first `PAGE_BUILDINGS` buildings (the
page says when there are more: the API lists them all), `PAGE_FAULTS` open faults of each,
`PAGE_SPIKES` spikes of their sites started in the last day, then those still in progress
that started before it (at most `PAGE_SPIKES` per site), and at most `PAGE_ENERGY_ROWS` energy
rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Final

from api.page_chart import energy_charts
from api.page_ops import Operations, OperationsReader
from api.page_sections import (
    buildings_section,
    now_section,
    pipeline_section,
    spikes_section,
    when,
)
from core.clock import DAY_MS, HOUR_MS
from lighting.read.model import ReadModel
from lighting.read.rows import BuildingSummary, EnergyRow, FaultRow, SpikeRow

PAGE_BUILDINGS: Final = 100
PAGE_FAULTS: Final = 100
PAGE_SPIKES: Final = 20
PAGE_ENERGY_ROWS: Final = 10_000
REFRESH_MS: Final = 5_000

STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:14px 0 4px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{padding:3px 10px;text-align:left;
border-bottom:1px solid #eee}th{background:#f6f6f6}.site{margin-bottom:16px}
.ok{color:#2a7d2a}.bad{color:#b00020;font-weight:600}.muted{color:#777}
.multiples{display:flex;flex-wrap:wrap;gap:8px}.multiples svg{border:1px solid #eee}
header{display:flex;gap:16px;align-items:baseline}header form{margin-left:auto}
"""

PAGE_SCRIPT: Final = f"""'use strict';
(function () {{
  const every = {REFRESH_MS};
  const asOf = document.getElementById('as-of');
  async function refresh() {{
    try {{
      const reply = await fetch('/page/live', {{
        credentials: 'same-origin', headers: {{ Accept: 'application/json' }} }});
      if (reply.status === 401) {{ window.location.assign('/login'); return; }}
      if (!reply.ok) throw new Error('HTTP ' + reply.status);
      const live = await reply.json();
      for (const [id, html] of Object.entries(live.sections)) {{
        const section = document.getElementById(id);
        if (section) section.innerHTML = html;
      }}
      asOf.textContent = live.as_of;
      asOf.className = 'muted';
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
    }} catch (error) {{
      asOf.textContent = asOf.textContent.split(' (')[0] + ' (refresh failed: ' + error + ')';
      asOf.className = 'bad';
    }}
    window.setTimeout(refresh, every);
  }}
  window.setTimeout(refresh, every);
}})();
"""

QUERY_MODEL_NOTE: Final = {
    True: "Query model: InfluxDB. Energy per site is read from it with InfluxQL (closed "
    "hourly windows); faults, spikes and shards from DynamoDB.",
    False: "Query model: Timestream LiveAnalytics (this deployment writes energy there but "
    "the page cannot read it). Everything here comes from DynamoDB: faults, spikes, shards, "
    "dead letters. Set LUXFLOW_QUERY_MODEL=influxdb to chart energy.",
}


@dataclass(frozen=True)
class PageData:
    """Everything one rendering of the page shows, read at `now_ms`."""

    now_ms: int
    buildings: list[BuildingSummary]
    faults: dict[tuple[str, str], list[FaultRow]]
    energy: list[EnergyRow] | None
    spikes: list[SpikeRow]
    operations: Operations | None
    more_buildings: bool = False


def read_page(model: ReadModel, ops: OperationsReader | None, now_ms: int) -> PageData:
    """Read what the page shows (bounded, see the module docstring)."""
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
    sites = sorted({b.site_id for b in buildings})
    since_ms = now_ms - DAY_MS
    recent = sorted(
        (
            spike
            for site_id in sites
            for spike in model.command.spikes(site_id, since_ms, limit=PAGE_SPIKES).items
        ),
        key=lambda s: s.started_at_ms,
        reverse=True,
    )[:PAGE_SPIKES]
    # An episode still in progress is shown whatever its start, after the last day's.
    older_open = sorted(
        (
            spike
            for site_id in sites
            for spike in model.command.open_spikes(site_id, limit=PAGE_SPIKES).items
            if spike.started_at_ms < since_ms
        ),
        key=lambda s: s.started_at_ms,
        reverse=True,
    )
    spikes = recent + older_open
    return PageData(
        now_ms,
        buildings,
        faults,
        energy,
        spikes,
        ops(now_ms) if ops is not None else None,
        more_buildings=buildings_page.next_cursor is not None,
    )


def sections(data: PageData) -> dict[str, str]:
    """The page's live sections by element id, as HTML fragments."""
    open_faults = [f for fs in data.faults.values() for f in fs]
    energy = (
        energy_charts(data.energy)
        if data.energy is not None
        else '<p data-testid="energy-unavailable" class="muted">Not readable with this query '
        "model (see above).</p>"
    )
    return {
        "now": now_section(open_faults, data.spikes, data.now_ms),
        "pipeline": pipeline_section(data.operations, data.now_ms),
        "energy": energy,
        "spikes": spikes_section(data.spikes, data.now_ms),
        "buildings": buildings_section(
            data.buildings, data.faults, more_buildings=data.more_buildings
        ),
    }


def as_of(now_ms: int) -> str:
    return f"as of {when(now_ms)} UTC · refreshes every {REFRESH_MS // 1000} s"


def render_page(data: PageData) -> str:
    """The whole page, its sections filled in."""
    parts = sections(data)
    titles = {
        "now": "Now",
        "pipeline": "Pipeline",
        "energy": "Energy per hour per site (last day)",
        "spikes": "Spikes of the last day",
        "buildings": "Sites, buildings and open faults",
    }
    body = "".join(
        f'<h2>{escape(title)}</h2><div id="{key}" data-testid="section-{key}">{parts[key]}</div>'
        for key, title in titles.items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>luxflow operator</title>"
        f'<style>{STYLE}</style></head><body data-refreshes="0">'
        f'<header><h1>luxflow operator page</h1><span id="as-of" class="muted">'
        f"{as_of(data.now_ms)}</span>"
        '<form method="post" action="/logout"><button>Log out</button></form></header>'
        f'<p class="muted" data-testid="query-model">{QUERY_MODEL_NOTE[data.energy is not None]}'
        f"</p>{body}"
        '<script src="/page.js"></script></body></html>'
    )


LOGIN_FORM: Final = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>luxflow login</title>'
    f"<style>{STYLE}</style></head><body><h1>luxflow operator page</h1>"
    '<form method="post" action="/login"><label>API token <input type="password" '
    'name="token" autocomplete="current-password"></label> <button>Open</button></form>'
    '<p class="muted">The token is the server\'s LUXFLOW_API_TOKEN (the playground, '
    "<code>./dev up</code>, prints it).</p></body></html>"
)


def operator_page(model: ReadModel, now_ms: int, ops: OperationsReader | None = None) -> str:
    """Read what the page shows and render it."""
    return render_page(read_page(model, ops, now_ms))


def live_sections(
    model: ReadModel, now_ms: int, ops: OperationsReader | None = None
) -> dict[str, object]:
    """What `/page/live` answers: the sections and the new "as of" line."""
    return {"as_of": as_of(now_ms), "sections": sections(read_page(model, ops, now_ms))}
