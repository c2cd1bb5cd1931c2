"""The operator page without a browser: `/` sends a browser to the login and a JSON client a
401, the live sections, spikes in progress (and items stored before spikes had a status), and
energy charts whose axes fit the data."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from api.page import PageData, render_page
from api.page_chart import energy_charts, nice_top
from api.page_ops import DeadLetterCount, Operations
from api.page_sections import duration, now_section, plural, spikes_section
from lighting.read.command import spike_row
from lighting.read.rows import EnergyRow, FaultRow, SpikeRow
from lighting.status import ShardRow
from tests.unit.api.asgi import call
from tests.unit.api.test_app_guards import TOKEN, app_with, login, session_of

NOW = 1_790_000_000_000
HOUR = 3_600_000
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def spike(status: str = "closed", ended: int | None = NOW - 60_000) -> SpikeRow:
    return SpikeRow(
        "s1", "b1", "r1", "l1", "asset", "rated", NOW - 300_000, ended, 180.0, 60.0, 2.5,
        "e1", status,
    )  # fmt: skip


def test_a_browser_without_a_session_is_sent_to_the_login_form() -> None:
    answer = call(app_with(), "GET", "/", headers=HTML)
    assert (answer.status, answer.header("location")) == (303, "/login")


def test_a_browser_with_a_stale_session_is_sent_to_the_login_form_too() -> None:
    answer = call(app_with(), "GET", "/", headers={**HTML, "cookie": "luxflow_session=stale"})
    assert (answer.status, answer.header("location")) == (303, "/login")


def test_a_json_client_without_a_token_still_gets_401() -> None:
    answer = call(app_with(), "GET", "/", headers={"accept": "application/json"})
    assert answer.status == 401
    assert answer.header("www-authenticate") == 'Bearer realm="luxflow"'


def test_after_logging_in_the_page_and_its_live_sections_are_served() -> None:
    app = app_with()
    cookie = f"luxflow_session={session_of(login(app))}"
    page = call(app, "GET", "/", headers={**HTML, "cookie": cookie})
    assert page.status == 200
    assert b'<script src="/page.js"></script>' in page.body
    live = call(app, "GET", "/page/live", headers={"cookie": cookie})
    assert live.status == 200
    assert set(live.json()["sections"]) == {"now", "pipeline", "energy", "spikes", "buildings"}
    script = call(app, "GET", "/page.js", headers={"cookie": cookie})
    assert (script.header("content-type") or "").startswith("text/javascript")
    assert b"/page/live" in script.body
    assert "script-src 'self'" in (page.header("content-security-policy") or "")


def test_the_live_sections_need_a_credential() -> None:
    assert call(app_with(), "GET", "/page/live").status == 401
    with_token = call(app_with(), "GET", "/page/live", headers={"authorization": f"Bearer {TOKEN}"})
    assert with_token.status == 200


def test_a_spike_item_without_a_status_reads_as_closed_and_an_open_one_as_in_progress() -> None:
    item = {
        "site_id": "s1", "building_id": "b1", "room_id": "r1", "asset_id": "l1",
        "rule": "rated", "started_at_ms": NOW - 300_000, "ended_at_ms": NOW - 60_000,
        "peak_w": 180, "threshold_w": 60, "excess_wh": 2.5, "event_id": "e1",
    }  # fmt: skip
    assert spike_row(item).status == "closed"
    opened = spike_row({**item, "status": "open", "ended_at_ms": None})
    assert (opened.status, opened.ended_at_ms) == ("open", None)
    html = now_section([], [spike_row(item), opened], NOW)
    assert html.count('data-testid="open-spike"') == 1
    assert "1 spike</span> in progress" not in html and "1 spike in progress" in html


def test_a_site_demand_spike_in_progress_is_shown_for_the_whole_site() -> None:
    item = {
        "site_id": "s1", "building_id": "", "room_id": "", "asset_id": "", "level": "site",
        "rule": "site_demand", "started_at_ms": NOW - 600_000, "ended_at_ms": None,
        "peak_w": 3000, "threshold_w": 2500, "excess_wh": 8.3, "event_id": "e-site",
        "status": "open",
    }  # fmt: skip
    row = spike_row(item)
    assert (row.level, row.status, row.ended_at_ms) == ("site", "open", None)
    html = now_section([], [row], NOW)
    assert 'data-testid="open-spike" data-site="s1" data-asset="" data-event="e-site"' in html
    assert "<td>whole site</td><td>site_demand</td>" in html
    assert "1 spike in progress" in html
    assert 'data-status="open"' in spikes_section([row], NOW)


def test_flicker_is_listed_first_among_open_faults() -> None:
    faults = [
        FaultRow("s1", "b1", "r1", f"l{n}", code, NOW - n * 1000, "open", None, f"f{n}")
        for n, code in enumerate(["lamp_failure", "flicker", "voltage_high"])
    ]
    html = now_section(faults, [], NOW)
    codes = re.findall(r'data-testid="open-fault" data-asset="[^"]+" data-code="([^"]+)"', html)
    assert codes == ["flicker", "lamp_failure", "voltage_high"]  # then newest first
    assert "3 open faults" in html and "1 flickering" in html


def test_the_page_names_its_query_model_and_shows_the_pipeline() -> None:
    ops = Operations(
        [ShardRow("shard-1", "w1", "49", 1_500, 4_000, True, 2)],
        [DeadLetterCount(NOW - NOW % HOUR, "not_json", 2)],
    )
    data = PageData(NOW, [], {}, None, [spike("open", None)], ops)
    html = render_page(data)
    assert "Query model: Timestream LiveAnalytics" in html
    assert 'data-lag-ms="1500"' in html and 'data-reason="not_json" data-count="2"' in html
    assert "Query model: InfluxDB" in render_page(replace(data, energy=[]))


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_the_axis_top_is_round_and_the_data_fills_at_least_40_percent_of_it(most: float) -> None:
    top = nice_top(most)
    assert most <= top <= 2.5 * most
    mantissa = f"{top:e}".split("e")[0]
    assert float(mantissa) in {1.0, 2.0, 5.0}


def test_each_site_gets_its_own_scale_and_all_share_the_hours_that_have_data() -> None:
    start = NOW - NOW % HOUR - 2 * HOUR
    rows = [
        EnergyRow("site", "small", "", "", "1h", start, 0.02),
        EnergyRow("site", "small", "", "", "1h", start + HOUR, 0.03),
        EnergyRow("site", "big", "", "", "1h", start + HOUR, 40.0),
    ]
    html = energy_charts(rows)
    charts = dict(re.findall(r'data-site="(\w+)" data-top-kwh="([\d.e+-]+)"', html))
    assert charts == {"big": "50", "small": "0.05"}
    spans = set(re.findall(r'data-x-start="(\d+)" data-x-end="(\d+)"', html))
    assert spans == {(str(start), str(start + 2 * HOUR))}


def test_counts_and_durations_read_as_english() -> None:
    assert [plural(n, "spike") for n in (0, 1, 2)] == ["0 spikes", "1 spike", "2 spikes"]
    assert [duration(ms) for ms in (45_000, 720_000, 12_600_000, 259_200_000)] == [
        "45 s", "12 min", "3.5 h", "3.0 d"
    ]  # fmt: skip
