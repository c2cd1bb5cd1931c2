"""The `series` agent in the real lighting app (`build_app`), driven through
`AgentTestContext`: readings in, `TelemetryRollup`s out when their windows close."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import HOUR_MS, MINUTE_MS
from domain.series import TelemetryRollup, direct_rollups
from domain.telemetry import Reading, encode_telemetry, telemetry_of
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.processor import EngineConfig
from streams.testing import AgentTestContext

START_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS
GRACE_MS = 10 * MINUTE_MS


def reading(
    ts_ms: int, *, asset: str = "lamp-1", power_w: float = 60.0, lux: float = 300.0
) -> Reading:
    return Reading(
        "site-1", "b-1", "r-1", asset, ts_ms, power_w, 230.0, power_w / 230.0, lux, True, 80
    )


def record(r: Reading) -> bytes:
    return encode_telemetry(telemetry_of(r))


def context(interval_ms: int = MINUTE_MS) -> AgentTestContext:
    app = build_app(
        empty_registry(), topic="telemetry", grace_ms=GRACE_MS, series_interval_ms=interval_ms
    )
    return AgentTestContext(
        app,
        now_ms=START_MS,
        config=EngineConfig(checkpoint_interval_ms=5_000, idle_timeout_ms=60_000),
    )


def close_all(ctx: AgentTestContext, after_ms: int) -> None:
    """Let the shard go quiet long enough for every window to close."""
    for step in range(1, 4):
        ctx.tick(after_ms + step * (HOUR_MS + GRACE_MS))


def rollups(ctx: AgentTestContext, window_ms: int) -> dict[tuple[str, int], TelemetryRollup]:
    out: dict[tuple[str, int], TelemetryRollup] = {}
    for o in ctx.outputs:
        if isinstance(o, TelemetryRollup) and o.window_ms == window_ms:
            key = (o.asset_id, o.window_start_ms)
            assert key not in out, f"{key} emitted twice"
            out[key] = o
    return out


def same(
    got: dict[tuple[str, int], TelemetryRollup], want: dict[tuple[str, int], TelemetryRollup]
) -> None:
    assert sorted(got) == sorted(want)
    for key, rollup in want.items():
        other = got[key]
        assert (other.readings, other.on_fraction, other.last_ts_ms) == (
            rollup.readings,
            rollup.on_fraction,
            rollup.last_ts_ms,
        )
        for name, value in rollup.stats.items():
            assert math.isclose(other.stats[name], value, rel_tol=1e-9, abs_tol=1e-9), name


@st.composite
def delivery(draw: st.DrawFn) -> list[Reading]:
    """Readings of three lamps over two hours, delivered out of order within the grace and
    with duplicates."""
    out: list[Reading] = []
    for _ in range(draw(st.integers(min_value=1, max_value=80))):
        ts = START_MS + draw(st.integers(min_value=0, max_value=2 * HOUR_MS))
        out.append(
            reading(
                ts,
                asset=draw(st.sampled_from(["lamp-1", "lamp-2", "lamp-3"])),
                power_w=draw(st.floats(min_value=0, max_value=500, allow_nan=False)),
                lux=draw(st.floats(min_value=0, max_value=2_000, allow_nan=False)),
            )
        )
    out.sort(key=lambda r: r.ts_ms)
    # Each reading moves back by up to half the grace: never late, often out of order.
    jitter = draw(st.lists(st.integers(0, GRACE_MS // 2), min_size=len(out), max_size=len(out)))
    order = sorted(range(len(out)), key=lambda i: out[i].ts_ms + jitter[i])
    delivered = [out[i] for i in order]
    dupes = draw(st.lists(st.integers(0, len(delivered) - 1), max_size=5))
    for i in sorted(dupes, reverse=True):
        delivered.insert(i + 1, delivered[i])
    return delivered


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery(), st.sampled_from([MINUTE_MS, 5 * MINUTE_MS, 15_000]))
def test_emitted_rollups_equal_a_direct_computation_over_the_same_readings(
    rs: list[Reading], interval_ms: int
) -> None:
    with context(interval_ms) as ctx:
        newest = START_MS
        for r in rs:
            newest = max(newest, r.ts_ms)
            ctx.put(record(r), key="site-1", arrival_ms=newest)
        close_all(ctx, newest)
        assert not ctx.dead_letters
        same(rollups(ctx, interval_ms), direct_rollups(rs, interval_ms))
        same(rollups(ctx, HOUR_MS), direct_rollups(rs, HOUR_MS))


def test_a_reading_late_within_the_grace_updates_its_minute_and_one_beyond_is_left_out() -> None:
    with context() as ctx:
        ctx.put(record(reading(START_MS, asset="lamp-1")), key="site-1", arrival_ms=START_MS)
        ctx.put(
            record(reading(START_MS + 5_000, asset="lamp-2")),
            key="site-1",
            arrival_ms=START_MS + 5_000,
        )
        later = START_MS + 8 * MINUTE_MS
        ctx.put(record(reading(later, asset="lamp-1")), key="site-1", arrival_ms=later)
        # lamp-2's gateway uploads a buffered minute-0 reading 8 minutes on: within the grace.
        ctx.put(
            record(reading(START_MS + 30_000, asset="lamp-2", power_w=90.0)),
            key="site-1",
            arrival_ms=later,
        )
        beyond = START_MS + 20 * MINUTE_MS
        ctx.put(record(reading(beyond, asset="lamp-1")), key="site-1", arrival_ms=beyond)
        # lamp-3's reading of minute 1 arrives 19 minutes late: its minute has closed.
        ctx.put(
            record(reading(START_MS + MINUTE_MS, asset="lamp-3")), key="site-1", arrival_ms=beyond
        )
        late_updates = ctx.engine.state.counters.late_updates
        close_all(ctx, beyond)
        minutes = rollups(ctx, MINUTE_MS)
        # Left out of the series only: its hour's usage window still took it, so it is no
        # late record (a dead letter of it, redriven, would count its energy twice).
        assert ctx.dead_letters == []
        assert late_updates >= 1
    assert minutes[("lamp-2", START_MS)].readings == 2
    assert minutes[("lamp-2", START_MS)].stats["power_w_max"] == 90.0
    assert ("lamp-3", START_MS + MINUTE_MS) not in minutes


def test_an_hour_is_emitted_with_its_last_interval_whether_or_not_its_asset_reports_on() -> None:
    """The hour is made from its closed intervals and closes when the watermark passes its
    end: in the same batch as its last interval, for an asset that falls silent (lamp-1) as
    for one whose next hour's first interval closes in that batch too (lamp-2)."""
    with context() as ctx:
        for r in [
            reading(START_MS + 10_000, asset="lamp-1", power_w=10.0),
            reading(START_MS + 30 * MINUTE_MS, asset="lamp-1", power_w=30.0),
            reading(START_MS + 59 * MINUTE_MS + 30_000, asset="lamp-2", power_w=5.0),
            reading(START_MS + HOUR_MS + 10_000, asset="lamp-2", power_w=7.0),
        ]:
            ctx.put(record(r), key="site-1", arrival_ms=r.ts_ms)
        assert rollups(ctx, HOUR_MS) == {}
        # lamp-3 moves the clock past hour 0's end and lamp-2's minute 60 plus the grace.
        past = START_MS + HOUR_MS + MINUTE_MS + GRACE_MS + 1
        ctx.put(record(reading(past, asset="lamp-3")), key="site-1", arrival_ms=past)
        hours = rollups(ctx, HOUR_MS)
        assert sorted(hours) == [("lamp-1", START_MS), ("lamp-2", START_MS)]
        assert [hours[k].readings for k in sorted(hours)] == [2, 1]
        assert hours[("lamp-1", START_MS)].stats["power_w_mean"] == 20.0
        assert hours[("lamp-1", START_MS)].stats["power_w_last"] == 30.0
        assert hours[("lamp-2", START_MS)].stats["power_w_max"] == 5.0
        assert ("lamp-2", START_MS + HOUR_MS) in rollups(ctx, MINUTE_MS)
        close_all(ctx, past)
        hours = rollups(ctx, HOUR_MS)  # none emitted twice
        assert len(hours) == 4
        assert hours[("lamp-2", START_MS + HOUR_MS)].stats["power_w_min"] == 7.0


def test_an_interval_of_one_reading_is_held_as_its_seven_values_and_rolls_up_exactly() -> None:
    """At the default cadence every open minute holds one reading: the window keeps that
    reading's 7 values (`SeriesAcc`'s one-reading form), not the 23 of the full form, and
    its rollup and hour are the readings' own values."""
    with context() as ctx:
        rs = [
            reading(START_MS + 10_000, power_w=10.0),
            reading(START_MS + MINUTE_MS + 10_000, power_w=30.0),
            reading(START_MS + MINUTE_MS + 40_000, power_w=20.0),
        ]
        for r in rs:
            ctx.put(record(r), key="site-1", arrival_ms=r.ts_ms)
        fine = ctx.engine.state.windowed["series_fine"].open
        held = {start: len(bucket["lamp-1"]) for (start, _), bucket in fine.items()}
        assert held == {START_MS: 7, START_MS + MINUTE_MS: 23}
        close_all(ctx, rs[-1].ts_ms)
        minutes, hours = rollups(ctx, MINUTE_MS), rollups(ctx, HOUR_MS)
    first = minutes[("lamp-1", START_MS)]
    assert (first.readings, first.on_fraction, first.last_ts_ms) == (1, 1.0, START_MS + 10_000)
    assert [first.stats[f"power_w_{s}"] for s in ("mean", "min", "max", "last")] == [10.0] * 4
    assert first.stats["dim_level_mean"] == 80.0
    assert minutes[("lamp-1", START_MS + MINUTE_MS)].stats["power_w_mean"] == 25.0
    hour = hours[("lamp-1", START_MS)]
    assert (hour.readings, hour.stats["power_w_min"], hour.stats["power_w_max"]) == (3, 10.0, 30.0)
    assert hour.stats["power_w_mean"] == 20.0


def test_a_crash_and_redelivery_emit_the_same_rollups_as_an_uninterrupted_run() -> None:
    rs = [reading(START_MS + i * 7_000, power_w=float(i % 13)) for i in range(700)]
    with context() as ctx:
        for r in rs:
            ctx.put(record(r), key="site-1", arrival_ms=r.ts_ms)
        close_all(ctx, rs[-1].ts_ms)
        reference = rollups(ctx, MINUTE_MS), rollups(ctx, HOUR_MS)
    with context() as ctx:
        for i, r in enumerate(rs):
            ctx.put(record(r), key="site-1", arrival_ms=r.ts_ms)
            if i == 300:
                ctx.checkpoint()
            if i == 450:
                ctx.restart()  # readings 301..450 are re-delivered
                for again in rs[301:451]:
                    ctx.put(record(again), key="site-1", arrival_ms=again.ts_ms)
        close_all(ctx, rs[-1].ts_ms)
        # A crash may re-emit a window closed before it: the same point, written again.
        got: dict[int, dict[tuple[str, int], TelemetryRollup]] = {MINUTE_MS: {}, HOUR_MS: {}}
        for o in ctx.outputs:
            if isinstance(o, TelemetryRollup):
                key = (o.asset_id, o.window_start_ms)
                assert got[o.window_ms].setdefault(key, o) == o
    assert (got[MINUTE_MS], got[HOUR_MS]) == reference


def test_series_off_adds_no_agent_and_no_table() -> None:
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS, series_interval_ms=0)
    assert [a.name for a in app.agents] == ["detect"]
    assert not [t.name for t in app.tables if t.name.startswith("series")]
