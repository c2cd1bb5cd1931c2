"""Each derived rule fires exactly once per episode and never on its near-miss."""

from __future__ import annotations

import itertools
import random

import msgspec

from domain.events import EnergySpike, Fault
from domain.rules import (
    BASELINE_RULE,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
    OVER_VOLTAGE,
    SPIKE_RULE,
    UNDER_VOLTAGE,
    AssetRuleState,
    Limits,
    offline_check,
    offline_deadline_ms,
    step,
)
from domain.site import SITE_DEMAND_RULE, SiteLimits, site_demand_step
from domain.telemetry import Reading

IDS = ("s", "b", "r", "a")
M = 60_000
LIMITS = Limits(
    spike_threshold_w=125.0,
    min_spike_ms=2 * M,
    baseline_factor=1.5,
    baseline_warmup=3,
    rated_w=100.0,
    lamp_current_fraction=0.1,
    voltage_band=0.1,
    flicker_toggles=4,
    flicker_window_ms=10 * M,
    offline_after_ms=15 * M,
)


def reading(
    k: int,
    power_w: float = 50.0,
    *,
    on: bool = True,
    dim: int = 50,
    voltage_v: float = 230.0,
    current_a: float | None = None,
    code: str | None = None,
) -> Reading:
    current = power_w / voltage_v if current_a is None else current_a
    return Reading(*IDS, k * M, power_w, voltage_v, current, 0.0, on, dim, code)


def run(readings: list[Reading], limits: Limits = LIMITS) -> tuple[AssetRuleState, list[object]]:
    state: AssetRuleState | None = None
    events: list[object] = []
    for r in readings:
        state, new = step(state, r, limits)
        events.extend(new)
    assert state is not None
    return state, events


def normal(ks: range) -> list[Reading]:
    return [reading(k) for k in ks]


def faults(events: list[object], code: str) -> list[Fault]:
    return [e for e in events if isinstance(e, Fault) and e.code == code]


def test_sustained_spike_fires_once_a_one_reading_blip_never() -> None:
    blip = [*normal(range(5)), reading(5, 200.0, dim=100), *normal(range(6, 10))]
    assert run(blip)[1] == []
    sustained = [*normal(range(5)), *[reading(k, 200.0, dim=100) for k in (5, 6, 7)], reading(8)]
    spikes = [e for e in run(sustained)[1] if isinstance(e, EnergySpike)]
    # Raised open at its second reading above (minute 6), closed at the first back.
    assert [(s.started_at_ms, s.ended_at_ms, s.status, s.rule, s.peak_w) for s in spikes] == [
        (5 * M, None, "open", SPIKE_RULE, 200.0),
        (5 * M, 8 * M, "closed", SPIKE_RULE, 200.0),
    ]
    assert spikes[1].excess_wh == 3 * 75.0 / 60


def test_baseline_spike_below_rated_fires_once_after_warm_up() -> None:
    # At dim 50 the lamp draws 50 W; 110 W is below the rated threshold but twice its usual.
    episode = [*normal(range(6)), *[reading(k, 110.0) for k in (6, 7, 8)], *normal(range(9, 12))]
    spikes = [e for e in run(episode)[1] if isinstance(e, EnergySpike)]
    assert [(s.started_at_ms, s.ended_at_ms, s.rule) for s in spikes] == [
        (6 * M, None, BASELINE_RULE),
        (6 * M, 9 * M, BASELINE_RULE),
    ]
    assert spikes[0].threshold_w == spikes[1].threshold_w == 75.0
    # Before the bucket is learnt (three readings), the same power is nothing.
    cold = [*normal(range(1)), *[reading(k, 110.0) for k in (1, 2)], *normal(range(3, 8))]
    assert run(cold)[1] == []
    # Another dim bucket has its own baseline: 90 W at dim 90 is normal there.
    other_bucket = [*normal(range(6)), *[reading(k, 90.0, dim=90) for k in range(6, 12)]]
    assert run(other_bucket)[1] == []


def test_spike_readings_are_not_learnt() -> None:
    state, _ = run([*normal(range(6)), *[reading(k, 110.0) for k in (6, 7, 8)]])
    ewma_w, count = state.baseline[50]
    assert count == 6
    assert abs(ewma_w - 50.0) < 1e-9


def test_lamp_failure_opens_once_clears_once() -> None:
    dead = [reading(k, 0.3, current_a=0.0013) for k in (3, 4, 5)]
    _, events = run([*normal(range(3)), *dead, *normal(range(6, 8))])
    assert faults(events, LAMP_FAILURE) == [
        Fault(*IDS, LAMP_FAILURE, 3 * M),
        Fault(*IDS, LAMP_FAILURE, 3 * M, "cleared", 6 * M),
    ]


def test_lamp_failure_needs_on_dimmed_up_and_no_device_code() -> None:
    off = [reading(k, 0.3, on=False, dim=0, current_a=0.0013) for k in range(3)]
    low_dim = [reading(k, 0.3, dim=5, current_a=0.0013) for k in range(3, 6)]
    coded = [reading(k, 0.3, current_a=0.0013, code="LAMP_FAILURE") for k in range(6, 8)]
    _, events = run([*off, *low_dim, *coded, reading(8)])
    assert faults(events, LAMP_FAILURE) == []
    assert len(faults(events, "LAMP_FAILURE")) == 2  # the device's own code: open, cleared


def test_voltage_outside_the_band_opens_and_clears_inside_never() -> None:
    near = [
        reading(k, voltage_v=v)
        for k, v in zip(range(2, 6), (250.0, 252.9, 207.1, 210.0), strict=True)
    ]
    _, events = run([*normal(range(2)), *near, *normal(range(6, 8))])
    assert events == []
    over = [reading(k, voltage_v=262.0) for k in (2, 3)]
    under = [reading(4, voltage_v=195.0)]
    _, events = run([*normal(range(2)), *over, *under, *normal(range(5, 7))])
    assert events == [
        Fault(*IDS, OVER_VOLTAGE, 2 * M),
        Fault(*IDS, OVER_VOLTAGE, 2 * M, "cleared", 4 * M),
        Fault(*IDS, UNDER_VOLTAGE, 4 * M),
        Fault(*IDS, UNDER_VOLTAGE, 4 * M, "cleared", 5 * M),
    ]


def at(ts_ms: int, on: bool) -> Reading:
    power_w = 50.0 if on else 0.3
    return Reading(*IDS, ts_ms, power_w, 230.0, power_w / 230.0, 0.0, on, 50 if on else 0)


def test_flicker_opens_on_the_fourth_short_cycle_in_the_window() -> None:
    # On for one reading, off for one (1-minute on-periods, shorter than 90 s): the on-periods
    # started at 11, 13, 15, 17 end at 12, 14, 16, 18; the fourth opens flicker at 18.
    toggling = [reading(k, on=k % 2 == 1, dim=50 if k % 2 else 0) for k in range(10, 19)]
    _, events = run([*normal(range(10)), *toggling, *normal(range(19, 40))])
    # The window (22 - 10 min, 22] holds only the cycles at 14, 16 and 18: cleared at 22.
    assert faults(events, FLICKER) == [
        Fault(*IDS, FLICKER, 18 * M),
        Fault(*IDS, FLICKER, 18 * M, "cleared", 22 * M),
    ]


def test_a_lamp_cycling_on_its_own_opens_exactly_one_flicker_fault() -> None:
    # 40 minutes of 30 s on / 30 s off, seen every 10-40 s, then steady: one fault, however
    # often the count dips below the threshold in between (the cool-down continues it).
    rng = random.Random(3)
    readings = [at(k * M, True) for k in range(10)]
    ts_ms = 10 * M
    while ts_ms < 50 * M:
        readings.append(at(ts_ms, ts_ms % 60_000 < 30_000))
        ts_ms += rng.randrange(10_000, 40_001, 1_000)
    readings += [at(t * M, True) for t in range(51, 80)]
    state, events = run(readings)
    flicker = faults(events, FLICKER)
    assert len({f.event_id for f in flicker}) == 1
    assert flicker[0].status == "open" and flicker[-1].status == "cleared"
    assert state.flicker is None  # cleared, and the cool-down is over


def test_a_night_of_occupancy_switching_never_flickers() -> None:
    # Occupancy control: on for a hold time of 3-10 minutes after motion, off for 10 s to 5
    # minutes, all night, seen every 10-40 s: on/off changes by the hundred, no short cycle.
    rng = random.Random(11)
    readings: list[Reading] = []
    ts_ms, on, until_ms = 0, False, 0
    while ts_ms < 10 * 60 * M:
        if ts_ms >= until_ms:
            on = not on
            until_ms = ts_ms + (
                rng.randrange(3 * M, 10 * M) if on else rng.randrange(10_000, 5 * M)
            )
        readings.append(at(ts_ms, on))
        ts_ms += rng.randrange(10_000, 40_001, 1_000)
    changes = sum(a.on != b.on for a, b in itertools.pairwise(readings))
    assert changes > 100
    _, events = run(readings)
    assert faults(events, FLICKER) == []


def test_one_brief_off_and_scheduled_switching_never_flicker() -> None:
    brief_off = [reading(5, 0.3, on=False, dim=0)]
    switch_off = [reading(k, 0.3, on=False, dim=0) for k in range(12, 20)]
    _, events = run([*normal(range(5)), *brief_off, *normal(range(6, 12)), *switch_off])
    assert events == []


def test_offline_by_check_then_cleared_by_the_next_reading() -> None:
    state, _ = run(normal(range(3)))
    assert offline_deadline_ms(state, LIMITS) == 17 * M
    same, events = offline_check(state, 17 * M - 1, LIMITS)
    assert same is state and events == []
    state, events = offline_check(state, 20 * M, LIMITS)
    assert events == [Fault(*IDS, OFFLINE, 17 * M)]
    assert offline_check(state, 30 * M, LIMITS)[1] == []  # opened once
    state, events = step(state, reading(25), LIMITS)
    assert events == [Fault(*IDS, OFFLINE, 17 * M, "cleared", 25 * M)]
    assert state.offline is None


def test_offline_seen_only_by_the_reading_gives_the_same_fault() -> None:
    _, events = run([*normal(range(3)), reading(25)])
    assert events == [
        Fault(*IDS, OFFLINE, 17 * M),
        Fault(*IDS, OFFLINE, 17 * M, "cleared", 25 * M),
    ]


def test_a_gap_shorter_than_offline_after_is_nothing() -> None:
    state, events = run([*normal(range(3)), reading(16)])
    assert events == []
    assert offline_check(state, 30 * M, LIMITS)[1] == []


def test_default_limits_keep_the_original_rules_only() -> None:
    plain = Limits(spike_threshold_w=125.0)
    odd = [
        reading(0),
        reading(1, 0.3, current_a=0.0),
        reading(2, voltage_v=300.0),
        reading(30, on=False),
        reading(31),
    ]
    state, events = run(odd, plain)
    assert events == []
    assert offline_check(state, 10**12, plain)[1] == []


def test_new_state_fields_round_trip_and_old_snapshots_load() -> None:
    state, _ = run([*normal(range(6)), *[reading(k, on=k % 2 == 0) for k in range(6, 9)]])
    for codec in (msgspec.msgpack, msgspec.json):
        assert codec.decode(codec.encode(state), type=AssetRuleState) == state
    old = msgspec.msgpack.encode({"last_ts_ms": 5, "last_power_w": 1.0, "fault": None})
    assert msgspec.msgpack.decode(old, type=AssetRuleState) == AssetRuleState(5, 1.0)


SITE = SiteLimits(demand_threshold_w=1000.0, min_spike_ms=M)


def site_run(demands: list[float | None], limits: SiteLimits = SITE) -> list[EnergySpike]:
    from domain.site import SiteDemandState

    state: SiteDemandState | None = None
    out: list[EnergySpike] = []
    for minute, demand in enumerate(demands):
        if demand is None:
            continue  # no data that minute
        state, events = site_demand_step(
            state, site_id="s", minute_start_ms=minute * M, demand_w=demand, limits=limits
        )
        out.extend(events)
    return out


def test_site_demand_episode_is_one_event_raised_open_then_closed() -> None:
    [raised, spike] = site_run([800.0, 1200.0, 1500.0, 1100.0, 900.0, 800.0])
    assert (raised.status, raised.ended_at_ms, raised.peak_w) == ("open", None, 1200.0)
    assert raised.event_id == spike.event_id and raised.revision < spike.revision
    assert (spike.started_at_ms, spike.ended_at_ms, spike.peak_w) == (M, 4 * M, 1500.0)
    assert (spike.level, spike.rule, spike.asset_id) == ("site", SITE_DEMAND_RULE, "")
    assert spike.excess_wh == (200.0 + 500.0 + 100.0) / 60
    assert spike.event_id != msgspec.structs.replace(spike, site_id="t").event_id


def test_site_demand_at_threshold_missing_minutes_and_minimum_duration() -> None:
    assert site_run([900.0, 1000.0, 1000.0, 900.0]) == []
    [_, spike] = site_run([900.0, 1200.0, None, None, 900.0])
    assert (spike.started_at_ms, spike.ended_at_ms) == (M, 2 * M)
    two_minutes = SiteLimits(1000.0, min_spike_ms=2 * M)
    assert site_run([900.0, 1200.0, 900.0], two_minutes) == []
    # Raised with the minute that brings it to the rule's two minutes, not before.
    assert [(s.status, s.ended_at_ms) for s in site_run([1200.0, 1200.0], two_minutes)] == [
        ("open", None)
    ]
