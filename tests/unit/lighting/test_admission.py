"""Registry admission (lighting.admission through RegistryCache.admit and the lighting app's
decoder): who a reading may speak for. A registered asset is where the registry says it is;
unknown assets are bound to their first ids and limited per site and per fleet."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import AssetState, EnergySpike, Fault, UsageReport
from domain.registry import Asset, Registry, SiteDefaults
from domain.telemetry import Reading, Telemetry, encode_telemetry, telemetry_of
from lighting.admission import AdmissionError
from lighting.agents import build_app
from lighting.registry import RegistryCache
from streams.testing import AgentTestContext

TS_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS
REGISTERED = [
    Asset("s1", "b1", "r1", "a1", "luminaire", 60.0),
    Asset("s1", "b1", "r2", "a2", "luminaire", 60.0),
    Asset("s2", "b2", "r3", "a3", "luminaire", 60.0),
]
# No flood guard in the way: a site's flood of new faults is a site-level verdict, by design
# shared by every asset of the site, and not what these tests are about.
SITES = [SiteDefaults(site, flood_max_new_faults=1_000_000) for site in ("s1", "s2")]


def registry(**caps: Any) -> RegistryCache:
    return RegistryCache(lambda: Registry(REGISTERED, SITES), 2**62, lambda: 0, **caps)


def reading(
    asset_id: str,
    site_id: str = "s1",
    building_id: str = "b1",
    room_id: str = "r1",
    ts_ms: int = TS_MS,
    **values: Any,
) -> Reading:
    fields: dict[str, Any] = {
        "power_w": 60.0,
        "voltage_v": 230.0,
        "current_a": 0.26,
        "lux": 300.0,
        "on": True,
        "dim_level": 100,
        **values,
    }
    return Reading(
        site_id=site_id,
        building_id=building_id,
        room_id=room_id,
        asset_id=asset_id,
        ts_ms=ts_ms,
        **fields,
    )


def reason(cache: RegistryCache, r: Reading) -> str:
    try:
        cache.admit(r)
    except AdmissionError as exc:
        assert str(exc) == exc.reason
        return exc.reason
    return "admitted"


# -- registered assets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (("s1", "b1", "r1"), "admitted"),
        (("s2", "b1", "r1"), "identity_mismatch: site_id"),
        (("s-new", "b1", "r1"), "identity_mismatch: site_id"),
        (("s1", "b9", "r1"), "identity_mismatch: building_id"),
        (("s1", "b1", "r2"), "identity_mismatch: room_id"),
        (("s2", "b2", "r3"), "identity_mismatch: site_id"),
    ],
)
def test_a_registered_asset_is_admitted_only_where_the_registry_says_it_is(
    ids: tuple[str, str, str], expected: str
) -> None:
    cache = registry()
    assert reason(cache, reading("a1", *ids)) == expected


def test_identity_mismatches_are_counted_and_take_no_unknown_asset_place() -> None:
    cache = registry(unknown_asset_cap=1, unknown_asset_site_cap=1)
    for site in ("s2", "s3", "s4"):
        assert reason(cache, reading("a1", site)).startswith("identity_mismatch")
    assert cache.refused == {"identity_mismatch": 3}
    assert cache.unknown_asset_count == 0
    assert reason(cache, reading("new-lamp", "s2")) == "admitted"


def context(cache: RegistryCache) -> AgentTestContext:
    return AgentTestContext(build_app(cache, topic="t", grace_ms=10 * MINUTE_MS), now_ms=TS_MS)


def put(ctx: AgentTestContext, r: Reading, **rule: str) -> list[object]:
    data = encode_telemetry(telemetry_of(r) if not rule else _with_rule(r, **rule))
    return ctx.put(data, key=r.site_id, arrival_ms=r.ts_ms)


def _with_rule(r: Reading, **rule: str) -> Telemetry:
    import msgspec

    return msgspec.structs.replace(telemetry_of(r), **rule)


def test_a_forged_all_clear_changes_nothing_of_the_registered_asset() -> None:
    cache = registry()
    with context(cache) as ctx:
        put(ctx, reading("a1", fault_code="E42"))
        rules = next(t for t in ctx.app.tables if t.name == "asset_rules")
        before = dict(ctx.table_items(rules))["a1"]
        # "All fine" from another room, another site, a new site: three refusals.
        forged = [
            reading("a1", "s1", "b1", "r2", TS_MS + MINUTE_MS),
            reading("a1", "s2", "b2", "r3", TS_MS + 2 * MINUTE_MS),
            reading("a1", "s-new", "b1", "r1", TS_MS + 3 * MINUTE_MS),
        ]
        outputs = [o for r in forged for o in put(ctx, r)]
        assert outputs == []
        assert dict(ctx.table_items(rules))["a1"] == before
        assert [(d.origin, d.reason) for d in ctx.dead_letters] == [
            ("decode", "identity_mismatch: room_id"),
            ("decode", "identity_mismatch: site_id"),
            ("decode", "identity_mismatch: site_id"),
        ]
        # The honest device's next reading still clears its fault, at its own time.
        cleared = [
            o for o in put(ctx, reading("a1", ts_ms=TS_MS + 4 * MINUTE_MS)) if isinstance(o, Fault)
        ]
    assert [(f.status, f.cleared_at_ms) for f in cleared] == [("cleared", TS_MS + 4 * MINUTE_MS)]


def test_the_ids_the_rule_added_are_checked_before_the_registry() -> None:
    with context(registry()) as ctx:
        # Publishing as a1 (its topic and client id) while claiming a2: refused at decode.
        assert (
            put(
                ctx,
                reading("a2", "s1", "b1", "r2"),
                topic_site_id="s1",
                topic_asset_id="a1",
                client_id="a1",
            )
            == []
        )
        assert [d.reason for d in ctx.dead_letters] == ["topic_mismatch: asset_id"]


# -- unknown assets ---------------------------------------------------------------------------


def test_an_unknown_asset_is_bound_to_the_ids_it_was_first_seen_with() -> None:
    cache = registry(unknown_asset_cap=10)
    assert reason(cache, reading("u1", "s1", "b1", "r1")) == "admitted"
    assert reason(cache, reading("u1", "s2", "b2", "r3")) == "identity_mismatch: site_id"
    assert reason(cache, reading("u1", "s1", "b1", "r9")) == "identity_mismatch: room_id"
    assert reason(cache, reading("u1", "s1", "b1", "r1", TS_MS + 1)) == "admitted"


def test_one_site_cannot_use_up_the_fleets_allowance_of_unknown_assets() -> None:
    cache = registry(unknown_asset_cap=10, unknown_asset_site_cap=3)
    verdicts = [reason(cache, reading(f"ghost-{n}", "s1")) for n in range(1_000)]
    assert verdicts == ["admitted"] * 3 + ["unknown_asset_site_cap"] * 997
    # A real new lamp of another site still finds a place.
    assert reason(cache, reading("new-lamp", "s2", "b2", "r3")) == "admitted"
    assert cache.refused == {"unknown_asset_site_cap": 997}
    assert cache.unknown_asset_count == 4


def test_sites_the_registry_does_not_know_share_one_sites_allowance() -> None:
    cache = registry(unknown_asset_cap=10, unknown_asset_site_cap=2)
    verdicts = [reason(cache, reading(f"ghost-{n}", f"invented-{n}")) for n in range(5)]
    assert verdicts == ["admitted"] * 2 + ["unknown_asset_site_cap"] * 3
    assert reason(cache, reading("new-lamp", "s1")) == "admitted"


def test_the_fleet_cap_still_bounds_the_sum_of_the_sites() -> None:
    cache = registry(unknown_asset_cap=3, unknown_asset_site_cap=2)
    assert [reason(cache, reading(f"x{n}", "s1")) for n in range(2)] == ["admitted"] * 2
    assert reason(cache, reading("y0", "s2", "b2", "r3")) == "admitted"
    assert reason(cache, reading("y1", "s2", "b2", "r3")) == "unknown_asset"


def test_a_quiet_unknown_asset_gives_its_sites_place_to_a_newcomer_of_that_site() -> None:
    cache = registry(unknown_asset_cap=10, unknown_asset_site_cap=1)
    assert reason(cache, reading("old", "s1")) == "admitted"
    assert reason(cache, reading("new", "s1", ts_ms=TS_MS + DAY_MS - 1)) == "unknown_asset_site_cap"
    assert reason(cache, reading("new", "s1", ts_ms=TS_MS + DAY_MS)) == "admitted"
    assert cache.unknown_asset_count == 1
    assert reason(cache, reading("old", "s1", ts_ms=TS_MS + DAY_MS)) == "unknown_asset_site_cap"


def test_a_site_cap_of_zero_refuses_every_unknown_asset() -> None:
    cache = registry(unknown_asset_cap=None, unknown_asset_site_cap=0)
    assert reason(cache, reading("u1", "s1")) == "unknown_asset_site_cap"
    assert reason(cache, reading("a1", "s1")) == "admitted"


# -- the property: forged ids never touch a registered asset -----------------------------------

PLACES = [("s1", "b1", "r1"), ("s1", "b1", "r2"), ("s2", "b2", "r3"), ("s-new", "b9", "r9")]
ASSETS = ["a1", "a2", "a3", "u1", "u2"]
CLAIM = st.tuples(
    st.sampled_from(ASSETS),
    st.sampled_from(PLACES),
    st.integers(1, 20),  # minutes after the previous reading: never late
    st.sampled_from([0.0, 60.0, 95.0]),  # off, rated, a spike
    st.sampled_from([None, "E42"]),
    st.sampled_from(["none", "agree", "other-asset", "other-site"]),  # the rule's fields
)
WHERE = {a.asset_id: (a.site_id, a.building_id, a.room_id) for a in REGISTERED}


def honest(asset_id: str, place: tuple[str, str, str], rule: str) -> bool:
    """Whether a reading is the registered asset speaking for itself."""
    return WHERE.get(asset_id) == place and rule in ("none", "agree")


def rule_fields(asset_id: str, place: tuple[str, str, str], rule: str) -> dict[str, str]:
    if rule == "none":
        return {}
    topic_site, topic_asset = place[0], asset_id
    if rule == "other-asset":
        topic_asset = "a1" if asset_id != "a1" else "a2"
    if rule == "other-site":
        topic_site = "s2" if place[0] != "s2" else "s1"
    return {"topic_site_id": topic_site, "topic_asset_id": topic_asset, "client_id": topic_asset}


Claim = tuple[int, str, tuple[str, str, str], float, str | None, str]
"""(ts_ms, asset_id, place, power_w, fault_code, rule): one reading and how it arrived."""


def timed(claims: list[tuple[Any, ...]]) -> list[Claim]:
    """The generated claims at their times: each some minutes after the one before, so no
    reading is ever late, whatever subset of them is sent."""
    out: list[Claim] = []
    ts_ms = TS_MS
    for asset_id, place, minutes, power_w, fault, rule in claims:
        ts_ms += minutes * MINUTE_MS
        out.append((ts_ms, asset_id, place, power_w, fault, rule))
    return out


def run(claims: list[Claim], end_ms: int) -> tuple[dict[str, Any], dict[Any, object]]:
    """The registered assets' rule states and their outputs (the last version of each, by
    identity) after `claims` and quiet until `end_ms`, which closes every window."""
    cache = registry(unknown_asset_cap=3, unknown_asset_site_cap=2)
    last: dict[Any, object] = {}
    with context(cache) as ctx:
        for ts_ms, asset_id, place, power_w, fault, rule in claims:
            r = reading(asset_id, *place, ts_ms=ts_ms, power_w=power_w, fault_code=fault)
            put(ctx, r, **rule_fields(asset_id, place, rule))
        ctx.tick(end_ms)
        for output in ctx.outputs:
            if getattr(output, "asset_id", "") not in WHERE:
                continue
            if isinstance(output, Fault | EnergySpike):
                last[(type(output).__name__, output.event_id)] = output
            elif isinstance(output, UsageReport):
                last[(output.asset_id, output.window_ms, output.window_start_ms)] = output
            elif isinstance(output, AssetState):
                last[("state", output.asset_id)] = output
        rules = ctx.table_items(next(t for t in ctx.app.tables if t.name == "asset_rules"))
    return {k: v for k, v in rules if k in WHERE}, last


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CLAIM, min_size=1, max_size=40))
def test_a_registered_assets_state_changes_only_by_readings_whose_ids_match_the_registry(
    generated: list[tuple[Any, ...]],
) -> None:
    """Any mix of honest readings and forged ones (registered ids at the wrong place, unknown
    ids anywhere, topic and client ids that disagree) leaves every registered asset exactly as
    its honest readings alone leave it: the same rule state, faults, spikes, usage and current
    state."""
    claims = timed(generated)
    end_ms = claims[-1][0] + 2 * DAY_MS
    honest_only = [c for c in claims if honest(c[1], c[2], c[5])]
    assert run(claims, end_ms) == run(honest_only, end_ms)
