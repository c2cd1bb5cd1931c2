"""Site defaults are every rule's limits for the site's assets: whatever an operator imports,
either the import refuses it naming the field, or the real app runs every reading of the
site through its rules without an agent or callback failing (no internal_error dead letter)."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.registry import Registry, RegistryError, SiteDefaults, parse_json
from domain.timestamps import format_ts
from lighting.registry import RegistryCache
from tests.unit.lighting.test_agents_poison import TS_MS, Stack, raw

FIELDS = sorted(name for name in SiteDefaults.__annotations__ if name != "site_id")
VALUES = (
    st.sampled_from([0, -1, 1, 0.0])
    | st.integers(-3, 3)
    | st.integers(0, 2**62)
    | st.sampled_from([1e308, 1e-308, 5e-324, 1.0000001, 0.9999999, 2.2e152])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
)
ASSET = st.fixed_dictionaries(
    {
        "rated_w": st.sampled_from([1e308, 1e-308, 60]),
        "nominal_voltage_v": st.sampled_from([1e308, 1e-308, 230]),
        "spike_tolerance": st.sampled_from([1.0000001, 1e308, 1.25]),
    }
)


def readings(seed: int) -> list[bytes]:
    """An hour of a lamp's readings, values drawn from ordinary to extreme."""
    rng = random.Random(seed)
    payloads = []
    for i in range(40):
        payloads.append(
            raw(
                "lamp-1",
                v=2,
                energy_wh=i * rng.choice([0.5, 1e300, 0.0]),
                ts=format_ts(TS_MS - 3_600_000 + i * 60_000),
                power_w=rng.choice([0.0, 42.5, 400.0, 1e308]),
                voltage_v=rng.choice([0.0, 230.0, 1e308]),
                current_a=rng.choice([0.0, 0.18, 1e308]),
                on=rng.random() < 0.5,
                dim_level=rng.choice([0, 80, 100]),
            )
        )
    return payloads + [
        raw("lamp-2", ts=format_ts(TS_MS - 3_600_000 + i * 60_000)) for i in range(3)
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6),
    st.none() | ASSET,
    st.integers(0, 2**30),
)
def test_imported_site_defaults_are_refused_or_never_make_a_rule_fail(
    defaults: dict[str, Any], asset: dict[str, Any] | None, seed: int
) -> None:
    place = {"site_id": "site-1", "building_id": "b-1", "room_id": "r-1"}
    assets = (
        [] if asset is None else [{**place, "asset_id": "lamp-1", "kind": "luminaire", **asset}]
    )
    document = {"assets": assets, "sites": [{"site_id": "site-1", **defaults}]}
    try:
        imported = parse_json(json.dumps(document).encode())
    except RegistryError as exc:
        assert str(exc).startswith("bad site defaults: ")
        return
    registry = RegistryCache(
        lambda: Registry(imported.assets, imported.sites), 2**62, lambda: 0, unknown_asset_cap=None
    )
    stack = Stack(registry)
    stack.run(readings(seed))
    failed = [(d.origin, d.reason) for d in stack.letters() if d.origin not in ("decode", "late")]
    assert failed == []
