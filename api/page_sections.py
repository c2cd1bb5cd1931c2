"""The operator page's sections, each rendered to an HTML fragment from rows already read:
the pipeline (shards, dead letters), what is happening now (open faults, flicker, spikes in
progress), recent spikes, and the buildings with their open faults. The page's script swaps
these fragments in place on every refresh (`api.page`). Elements that tests and scripts read
carry `data-testid` / `data-*` attributes."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from api.page_ops import DEAD_LETTER_HOURS, MAX_SCAN_PAGES, Operations
from domain.timestamps import format_ts
from lighting.read.rows import BuildingSummary, FaultRow, SpikeRow

FLICKER = "flicker"


def when(ms: int) -> str:
    """`2026-12-06 23:41` (UTC)."""
    return format_ts(ms)[:16].replace("T", " ")


def duration(ms: int) -> str:
    """A human length of time: `45 s`, `12 min`, `3.5 h`, `2.0 d`."""
    ms = max(0, ms)
    if ms < 120_000:
        return f"{ms // 1000} s"
    if ms < 7_200_000:
        return f"{ms // 60_000} min"
    if ms < 172_800_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 86_400_000:.1f} d"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 spike`, `2 spikes`, `0 faults`."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def _since(ms: int, now_ms: int) -> str:
    return f'<span title="{when(ms)} UTC">{duration(now_ms - ms)} ago</span>'


def pipeline_section(ops: Operations | None, now_ms: int) -> str:
    """Per shard lag and checkpoint age, and dead letters per hour by reason code."""
    if ops is None:
        return '<p class="muted">This server was started without access to the pipeline.</p>'
    shard_rows = "".join(
        f'<tr data-testid="shard" data-shard="{escape(s.shard_id)}" '
        f'data-lag-ms="{"" if s.lag_ms is None else s.lag_ms}" '
        f'data-checkpoint-age-ms="{"" if s.last_checkpoint_age_ms is None else s.last_checkpoint_age_ms}">'  # noqa: E501
        f"<td>{escape(s.shard_id)}</td><td>{escape(s.owner or '-')}</td>"
        f"<td>{'ended' if s.lag_ms is None else duration(s.lag_ms)}</td>"
        f"<td>{'-' if s.last_checkpoint_age_ms is None else duration(s.last_checkpoint_age_ms)}"
        f"</td><td>{s.dead_letters_last_hour}</td></tr>"
        for s in ops.shards
    )
    shards = (
        "<table><tr><th>shard</th><th>owner</th><th>lag behind the stream</th>"
        f"<th>last checkpoint</th><th>dead letters (1 h)</th></tr>{shard_rows}</table>"
        if ops.shards
        else '<p class="muted">No shard has a lease yet: is a worker running?</p>'
    )
    if ops.dead_letters:
        letters = "".join(
            f'<tr data-testid="dead-letters" data-hour="{d.hour_ms}" '
            f'data-reason="{escape(d.reason)}" data-count="{d.count}"><td>{when(d.hour_ms)}</td>'
            f'<td class="bad">{escape(d.reason)}</td><td>{d.count}</td></tr>'
            for d in ops.dead_letters
        )
        dead = (
            "<table><tr><th>hour (UTC)</th><th>reason</th><th>dead letters</th></tr>"
            f"{letters}</table>"
        )
    elif ops.dead_letters_complete:
        dead = (
            f'<p data-testid="dead-letters-none" class="ok">No dead letters in the last '
            f"{DEAD_LETTER_HOURS} hours.</p>"
        )
    else:
        dead = ""
    partial = (
        ""
        if ops.dead_letters_complete
        else '<p data-testid="dead-letters-partial" class="bad">The dead-letter table is larger '
        f"than one refresh reads ({MAX_SCAN_PAGES} MB): these counts are a lower bound.</p>"
    )
    return (
        f"<h3>Shards</h3>{shards}<h3>Dead letters per hour, by reason "
        f"(last {DEAD_LETTER_HOURS} hours)</h3>{dead}{partial}"
        "<p class='muted'><code>luxflow deadletters</code> shows their bytes.</p>"
    )


def now_section(faults: Sequence[FaultRow], spikes: Sequence[SpikeRow], now_ms: int) -> str:
    """Open faults (flicker first, as it is in progress), then spikes still in progress."""
    ordered = sorted(faults, key=lambda f: (f.code != FLICKER, -f.opened_at_ms, f.asset_id))
    flickering = sum(1 for f in faults if f.code == FLICKER)
    open_spikes = [s for s in spikes if s.status == "open"]
    summary = (
        f'<p data-testid="now-summary"><span class="{"bad" if faults else "ok"}">'
        f"{plural(len(faults), 'open fault')}</span> · "
        f'<span class="{"bad" if flickering else "ok"}">{flickering} flickering</span> · '
        f'<span class="{"bad" if open_spikes else "ok"}">'
        f"{plural(len(open_spikes), 'spike')} in progress</span></p>"
    )
    spike_rows = "".join(
        f'<tr data-testid="open-spike" data-site="{escape(s.site_id)}" '
        f'data-asset="{escape(s.asset_id)}" data-event="{escape(s.event_id)}">'
        f"<td>{escape(s.site_id)}</td><td>{escape(s.asset_id or 'whole site')}</td>"
        f"<td>{escape(s.rule)}</td><td>{_since(s.started_at_ms, now_ms)}</td>"
        f'<td class="bad">{s.peak_w:.0f} W</td><td>{s.threshold_w:.0f} W</td></tr>'
        for s in open_spikes
    )
    spikes_html = (
        "<h3>Spikes in progress</h3><table><tr><th>site</th><th>asset</th><th>rule</th>"
        f"<th>started</th><th>peak so far</th><th>threshold</th></tr>{spike_rows}</table>"
        if open_spikes
        else ""
    )
    fault_rows = "".join(
        f'<tr data-testid="open-fault" data-asset="{escape(f.asset_id)}" '
        f'data-code="{escape(f.code)}"><td>{escape(f.site_id)}</td>'
        f"<td>{escape(f.building_id)}</td><td>{escape(f.room_id)}</td>"
        f'<td>{escape(f.asset_id)}</td><td class="bad">{escape(f.code)}</td>'
        f"<td>{_since(f.opened_at_ms, now_ms)}</td></tr>"
        for f in ordered
    )
    faults_html = (
        "<h3>Open faults</h3><table><tr><th>site</th><th>building</th><th>room</th>"
        f"<th>asset</th><th>fault</th><th>opened</th></tr>{fault_rows}</table>"
        if faults
        else ""
    )
    return summary + spikes_html + faults_html


def spikes_section(spikes: Sequence[SpikeRow], now_ms: int) -> str:
    if not spikes:
        return '<p data-testid="spikes-empty" class="ok">No spikes in the last day.</p>'
    rows = "".join(
        f'<tr data-testid="spike" data-site="{escape(s.site_id)}" '
        f'data-asset="{escape(s.asset_id)}" data-started="{s.started_at_ms}" '
        f'data-status="{escape(s.status)}">'
        f"<td>{when(s.started_at_ms)}</td><td>{escape(s.site_id)}</td>"
        f"<td>{escape(s.asset_id or 'whole site')}</td><td>{escape(s.rule)}</td>"
        f"<td>{'in progress' if s.status == 'open' else _lasted(s)}</td>"
        f"<td>{s.peak_w:.0f} W</td><td>{s.excess_wh:.1f} Wh</td></tr>"
        for s in spikes
    )
    return (
        "<table><tr><th>started (UTC)</th><th>site</th><th>asset</th><th>rule</th>"
        f"<th>lasted</th><th>peak</th><th>excess</th></tr>{rows}</table>"
    )


def _lasted(spike: SpikeRow) -> str:
    if spike.ended_at_ms is None:
        return "-"
    return duration(spike.ended_at_ms - spike.started_at_ms)


def _faults_table(faults: Sequence[FaultRow]) -> str:
    if not faults:
        return '<p class="ok">No open faults.</p>'
    rows = "".join(
        f'<tr data-testid="fault" data-asset="{escape(f.asset_id)}" data-code="{escape(f.code)}">'
        f"<td>{escape(f.room_id)}</td><td>{escape(f.asset_id)}</td>"
        f'<td class="bad">{escape(f.code)}</td><td>{when(f.opened_at_ms)}</td></tr>'
        for f in faults
    )
    return (
        "<table><tr><th>room</th><th>asset</th><th>fault</th><th>open since (UTC)</th></tr>"
        f"{rows}</table>"
    )


def buildings_section(
    buildings: Sequence[BuildingSummary],
    faults: dict[tuple[str, str], list[FaultRow]],
    *,
    more_buildings: bool,
) -> str:
    sites: dict[str, list[BuildingSummary]] = {}
    for building in buildings:
        sites.setdefault(building.site_id, []).append(building)
    site_html = []
    for site_id, site_buildings in sorted(sites.items()):
        inner = "".join(
            f'<div data-testid="building" data-site="{escape(b.site_id)}" '
            f'data-building="{escape(b.building_id)}" data-open-faults="{b.open_faults}">'
            f"<h4>{escape(b.building_id)} <span class='muted'>({plural(b.rooms, 'room')}, "
            f"{plural(b.assets, 'asset')})</span></h4>"
            f"{_faults_table(faults.get((b.site_id, b.building_id), []))}</div>"
            for b in site_buildings
        )
        open_count = sum(b.open_faults for b in site_buildings)
        site_html.append(
            f'<section class="site" data-testid="site" data-site="{escape(site_id)}">'
            f"<h3>{escape(site_id)} <span class='{'bad' if open_count else 'ok'}'>"
            f"{plural(open_count, 'open fault')}</span></h3>{inner}</section>"
        )
    more = (
        f'<p data-testid="more-buildings" class="muted">The first {len(buildings)} buildings '
        "are shown: <code>/api/v1/buildings</code> lists them all.</p>"
        if more_buildings
        else ""
    )
    return ("".join(site_html) or "<p>No sites.</p>") + more
