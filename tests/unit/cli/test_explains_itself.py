"""The stumbles of a first hour with the CLI, each fixed: headers that match their cells,
empty results that say what was searched and what exists, the registry as a table, counts
that are grammatical and agree with the summary above them, help that says what a command
does, and an install that shows its steps without setuptools' notice."""

from __future__ import annotations

import argparse
import subprocess

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from app import RUNTIME_COMMANDS
from cli.admin import registry_text
from cli.base import listing, nearby, plural, time_column
from cli.explain_empty import explain_empty
from cli.main import build_parser
from cli.query import render
from domain.registry import Asset, Registry, SiteDefaults
from sim.commands import offline_note
from tests.support.deployment import ROOT

STARTED_MS = 1_790_000_000_000


def registry() -> Registry:
    assets = [
        Asset(f"site-000{s}", f"site-000{s}-b0{b}", f"site-000{s}-b0{b}-r01",
              f"site-000{s}-b0{b}-r01-l0{n}", "luminaire", 40.0)
        for s in (1, 2) for b in (1, 2) for n in (1, 2)
    ]  # fmt: skip
    return Registry(assets, [SiteDefaults("site-0001", demand_threshold_w=5_000.0)])


def query(kind: str, **values: str) -> argparse.Namespace:
    defaults = {"site": "", "building": "", "room": "", "since": "", "scope": "site",
                "every": "1h", "start": "", "end": "", "asset_id": ""}  # fmt: skip
    return argparse.Namespace(kind=kind, **{**defaults, **values})


def test_a_table_header_over_iso_times_drops_the_ms_and_json_keeps_the_raw_value() -> None:
    rows = [{"asset_id": "l1", "started_at_ms": STARTED_MS}]
    header, cells = render(rows, "table").splitlines()
    assert header.split() == ["asset_id", "started_at"]
    assert cells.split()[1].startswith("2026-09-21T")
    assert msgspec.json.decode(render(rows, "json")) == rows
    assert time_column("window_start_ms") == "window_start"
    assert time_column("rated_w") == "rated_w"


def test_a_wrong_building_names_the_buildings_of_that_site() -> None:
    text = explain_empty(query("faults", site="site-0001", building="b01"), registry())
    assert text.splitlines() == [
        "no open faults in building b01 of site site-0001",
        "site site-0001 has no building b01; its buildings: site-0001-b01, site-0001-b02",
    ]


def test_a_wrong_site_names_the_sites_that_exist() -> None:
    text = explain_empty(query("spikes", site="site-9"), registry())
    assert text.splitlines()[1] == (
        "site site-9 has no assets in the registry; sites: site-0001, site-0002"
    )


def test_a_known_building_without_faults_says_only_what_was_searched() -> None:
    text = explain_empty(query("faults", site="site-0002", building="site-0002-b01"), registry())
    assert text == "no open faults in building site-0002-b01 of site site-0002"


def test_an_unknown_asset_gets_the_similar_ids() -> None:
    text = explain_empty(query("asset", asset_id="site-0001-b01-r01-l09"), registry())
    hint = text.splitlines()[1]
    assert hint.startswith("asset site-0001-b01-r01-l09 is not in the registry; similar ids: ")
    assert "site-0001-b01-r01-l01" in hint and hint.endswith("(of 8)")


@given(st.lists(st.text(min_size=1, max_size=8), max_size=30), st.text(max_size=8))
def test_nearby_ids_are_known_ids_at_most_five(known: list[str], wanted: str) -> None:
    found = nearby(wanted, known)
    assert set(found) <= set(known)
    assert len(found) == min(5, len(set(known)))
    assert listing(found, len(set(known))).startswith(", ".join(found) or "none")


def test_registry_show_is_a_table_of_assets_then_site_defaults() -> None:
    lines = registry_text(registry(), "site-0001").splitlines()
    assert lines[0].split() == ["asset_id", "kind", "site_id", "building_id", "room_id", "rated_w"]
    assert lines[1].split() == [
        "site-0001-b01-r01-l01", "luminaire", "site-0001", "site-0001-b01",
        "site-0001-b01-r01", "40",
    ]  # fmt: skip
    assert len(lines) == 1 + 4 + 4  # header, 4 assets, blank, title, header, 1 site
    assert lines[-1].split()[:2] == ["site-0001", "5000"]
    as_json = registry_text(registry(), "site-0002", as_json=True).splitlines()
    assert len(as_json) == 4 and msgspec.json.decode(as_json[0])["site_id"] == "site-0002"


def test_counts_are_grammatical() -> None:
    assert [plural(n, "spike") for n in (0, 1, 2)] == ["0 spikes", "1 spike", "2 spikes"]


def test_offline_counts_each_asset_once_and_the_site_wide_faults_apart() -> None:
    # 120 assets in the summary, each with one offline fault, plus one site-wide offline
    # fault per site from the flood rule: the demo said "124 assets reported offline".
    items = [
        {"type": "fault", "code": "offline", "asset_id": f"a{n}", "site_id": f"s{n % 4}",
         "level": "asset"}
        for n in range(120)
    ] + [
        {"type": "fault", "code": "offline", "asset_id": "", "site_id": f"s{n}", "level": "site"}
        for n in range(4)
    ] + [{"type": "fault", "code": "lamp_failure", "asset_id": "a1", "site_id": "s1"}]  # fmt: skip
    assert offline_note(items) == (
        "(and 120 assets reported offline once the simulated data ended; "
        "4 sites raised a site-wide offline fault)"
    )


def test_setup_help_says_the_stream_is_created_only_with_shards() -> None:
    root = build_parser(RUNTIME_COMMANDS)
    (sub,) = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    assert sub.choices["setup"].description is None
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert helps["setup"] == (
        "create the tables and the Timestream database (and the stream with --shards)"
    )


SETUPTOOLS_NOTICE = """Obtaining file:///work/luxflow
  Installing build dependencies: started
Collecting msgspec>=0.18
Building wheels for collected packages: luxflow
  Building editable for luxflow (pyproject.toml): started
  !!

          ********************************************************************************
          An editable installation was requested but the project's build backend warns...
          By 2025-Oct-31, you need to update your project and remove deprecated calls.
          ********************************************************************************

  !!
  self._finalize_license_files()
Installing collected packages: msgspec, luxflow
Successfully installed luxflow-0.1.0 msgspec-0.19.0
Successfully installed pip-26.3
"""


def test_the_install_shows_its_steps_without_the_editable_installation_notice() -> None:
    script = 'eval "$(sed -n "/^pip_filter() {/,/^}/p" dev)"; pip_filter'
    shown = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, input=SETUPTOOLS_NOTICE, capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert shown == [
        "Obtaining file:///work/luxflow",
        "Collecting msgspec>=0.18",
        "Building wheels for collected packages: luxflow",
        "Installing 2 packages",
        "Successfully installed 2 packages",
        "Successfully installed 1 package",
    ]
