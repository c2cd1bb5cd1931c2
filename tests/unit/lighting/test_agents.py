"""The real lighting app (lighting.agents.build_app), driven in-process through
`AgentTestContext(app)`: readings in, faults, usage reports, table state and checkpoints out."""

from __future__ import annotations

from core.clock import HOUR_MS, MINUTE_MS
from core.records import Position
from domain.events import AssetState, Fault, UsageReport
from domain.telemetry import Telemetry, encode_telemetry
from domain.timestamps import format_ts
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.processor import EngineConfig
from streams.testing import AgentTestContext

START_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS  # an hour boundary
GRACE_MS = 10 * MINUTE_MS


def reading(ts_ms: int, *, asset: str = "lamp-1", power_w: float = 60.0, fault: str = "") -> bytes:
    return encode_telemetry(
        Telemetry(
            v=1,
            site_id="site-1",
            building_id="b-1",
            room_id="r-1",
            asset_id=asset,
            ts=format_ts(ts_ms),
            power_w=power_w,
            voltage_v=230.0,
            current_a=power_w / 230.0,
            lux=300.0,
            on=True,
            dim_level=100,
            fault_code=fault or None,
        )
    )


def context() -> AgentTestContext:
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS)
    return AgentTestContext(
        app,
        now_ms=START_MS,
        config=EngineConfig(checkpoint_interval_ms=5_000, idle_timeout_ms=60_000),
    )


def test_a_reported_fault_opens_once_and_clears_once() -> None:
    with context() as ctx:
        for minute in range(10):
            code = "lamp_failure" if 3 <= minute < 6 else ""
            ctx.put(
                reading(START_MS + minute * MINUTE_MS, fault=code),
                key="site-1",
                arrival_ms=START_MS + minute * MINUTE_MS,
            )
        faults = [o for o in ctx.outputs if isinstance(o, Fault)]
    assert [(f.code, f.status) for f in faults] == [
        ("lamp_failure", "open"),
        ("lamp_failure", "cleared"),
    ]
    assert faults[0].event_id == faults[1].event_id
    assert faults[1].cleared_at_ms == START_MS + 6 * MINUTE_MS


def test_hourly_usage_of_a_steady_lamp_is_exact_once_the_shard_goes_quiet() -> None:
    with context() as ctx:
        # 60 W every minute for an hour and a minute: the first hour holds 60 intervals of 60 W.
        for minute in range(62):
            ts = START_MS + minute * MINUTE_MS
            ctx.put(reading(ts), key="site-1", arrival_ms=ts)
        assert not [o for o in ctx.outputs if isinstance(o, UsageReport)]
        # Quiet until the first hour's grace has passed on the idle clock, which keeps the lag
        # the readings showed (none): the first hour closes.
        ctx.tick(START_MS + HOUR_MS + GRACE_MS)
        reports = [
            o
            for o in ctx.outputs
            if isinstance(o, UsageReport) and o.asset_id == "lamp-1" and o.window_ms == HOUR_MS
        ]
    first = next(r for r in reports if r.window_start_ms == START_MS)
    assert abs(first.kwh - 0.060) < 1e-12
    assert first.covered_ms == HOUR_MS


def test_garbage_between_readings_is_dead_lettered_and_the_checkpoint_passes_it() -> None:
    with context() as ctx:
        ctx.put(reading(START_MS), key="site-1")
        ctx.put(b"{not json", key="site-1")
        # Power beyond the current state's deadband: the state is written.
        ctx.put(reading(START_MS + MINUTE_MS, power_w=90.0), key="site-1")
        position = ctx.checkpoint()
        assert [d.sequence_number for d in ctx.dead_letters] == [2]
        assert position == Position(3, 0)
        states = [o for o in ctx.outputs if isinstance(o, AssetState)]
        assert [s.ts_ms for s in states] == [START_MS, START_MS + MINUTE_MS]


def test_rule_state_survives_a_restart_from_the_checkpoint() -> None:
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS)
    asset_rules = next(t for t in app.tables if t.name == "asset_rules")
    with AgentTestContext(app, now_ms=START_MS) as ctx:
        ctx.put(reading(START_MS, fault="lamp_failure"), key="site-1")
        ctx.checkpoint()
        ctx.put(reading(START_MS + MINUTE_MS, fault="lamp_failure"), key="site-1")
        ctx.restart()  # the second reading's effects were never checkpointed
        held = dict(ctx.table_items(asset_rules))
        assert held["lamp-1"].last_ts_ms == START_MS
        # Re-delivered after the crash, the reading is applied once, and the fault that was
        # already open is not opened again.
        ctx.put(reading(START_MS + MINUTE_MS, fault="lamp_failure"), key="site-1")
        opened = [o for o in ctx.outputs if isinstance(o, Fault) and o.status == "open"]
        assert len({f.event_id for f in opened}) == 1
