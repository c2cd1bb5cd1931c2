"""A lighting shard restored from its snapshot holds the same state as before, with the ids
inside its rule states, usage sums and series intervals shared with the readings' copies, as
a shard that never restarted holds them (a snapshot section decodes its own copy of each)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import HOUR_MS, MINUTE_MS
from domain.telemetry import Reading, decode_reading, encode_telemetry, telemetry_of
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.processor import EngineConfig
from streams.testing import AgentTestContext
from tables.shard import ShardState

START_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS
PLACES = [("site-1", "site-1-b1", "site-1-b1-r1"), ("site-2", "site-2-b1", "site-2-b1-r2")]


def values(state: ShardState) -> dict[str, Any]:
    """Every table's content, as comparable bytes, and the values themselves."""
    out: dict[str, Any] = {}
    for name, part in state.plain.items():
        out[name] = sorted(
            (repr(k), msgspec.msgpack.encode(v, enc_hook=_form)) for k, v in part.data.items()
        )
    for name, wpart in state.windowed.items():
        out[name] = sorted(
            (repr((rng, k)), msgspec.msgpack.encode(v, enc_hook=_form))
            for rng, bucket in wpart.open.items()
            for k, v in bucket.items()
        )
    return out


def _form(value: Any) -> Any:
    return value.snapshot_form()


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 1), st.floats(0, 200)), min_size=1, max_size=30
    )
)
def test_a_restored_shard_holds_the_same_state_with_the_readings_ids(
    sent: list[tuple[int, int, float]],
) -> None:
    app = build_app(empty_registry(), topic="telemetry", grace_ms=10 * MINUTE_MS)
    config = EngineConfig(checkpoint_interval_ms=5_000, idle_timeout_ms=60_000)
    with AgentTestContext(app, now_ms=START_MS, config=config) as ctx:
        readings: list[Reading] = []
        for n, (lamp, place, power) in enumerate(sent):
            site, building, room = PLACES[place]
            readings.append(
                Reading(
                    site,
                    building,
                    room,
                    f"{site}-lamp-{lamp}",
                    START_MS + n * 20_000,
                    power,
                    230.0,
                    power / 230.0,
                    300.0,
                    power > 0,
                    80,
                )
            )
        for r in readings:
            ctx.put(encode_telemetry(telemetry_of(r)), key=r.site_id, arrival_ms=r.ts_ms)
        ctx.checkpoint()
        before = values(ctx.engine.state)
        ctx.restart()
        state = ctx.engine.state
        assert values(state) == before
        # The ids a reading of each place decodes to: the shared copies.
        shared = {
            i: decode_reading(encode_telemetry(telemetry_of(r)), r.ts_ms)
            for i, r in enumerate(readings)
        }
        pool = {}
        for r in shared.values():
            for name in ("site_id", "building_id", "room_id", "asset_id"):
                pool[getattr(r, name)] = getattr(r, name)
        held = [*state.plain["asset_rules"].data.values()]
        for name in ("usage_hourly", "usage_daily", "series_fine"):
            held += [v for bucket in state.windowed[name].open.values() for v in bucket.values()]
        assert held
        for value in held:
            for name in ("site_id", "building_id", "room_id"):
                assert getattr(value, name) is pool[getattr(value, name)]
        for rule_state in state.plain["asset_rules"].data.values():
            assert rule_state.asset_id is pool[rule_state.asset_id]
