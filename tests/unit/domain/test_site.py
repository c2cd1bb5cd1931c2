"""The site's learnt hour-of-day baseline: near-misses stay quiet, a real excess fires."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import EnergySpike
from domain.site import (
    SITE_BASELINE_RULE,
    SITE_DEMAND_RULE,
    SiteDemandState,
    SiteLimits,
    SiteSources,
    complete_until_ms,
    site_demand_step,
    site_limits_removed,
    source_moved,
)

LIMITS = SiteLimits(None, baseline_factor=1.5, baseline_min_excess_w=200.0)
HOUR_20 = 20 * HOUR_MS


def days(count: int, demand_at: dict[int, float] | None = None) -> list[EnergySpike]:
    """``count`` days of 1000 W from 20:00 to 21:00 (100 W otherwise, every minute); the last
    day's minutes in ``demand_at`` (minute of hour 20 -> W) replaced."""
    state: SiteDemandState | None = None
    spikes: list[EnergySpike] = []
    for day in range(count):
        for minute in range(24 * 60):
            start_ms = day * DAY_MS + minute * MINUTE_MS
            in_hour = HOUR_20 <= start_ms % DAY_MS < HOUR_20 + HOUR_MS
            demand = 1000.0 if in_hour else 100.0
            offset = (start_ms % DAY_MS - HOUR_20) // MINUTE_MS
            if day == count - 1 and in_hour and demand_at and offset in demand_at:
                demand = demand_at[offset]
            state, new = site_demand_step(
                state, site_id="s", minute_start_ms=start_ms, demand_w=demand, limits=LIMITS
            )
            spikes.extend(new)
    return spikes


def test_near_miss_below_the_learnt_peak_times_the_factor_stays_quiet() -> None:
    assert days(4, {10: 1450.0, 11: 1490.0}) == []  # 1.45x and 1.49x of the learnt 1000 W


def test_an_excess_above_the_learnt_peak_fires_once_learnt() -> None:
    spikes = days(4, {10: 1600.0, 11: 1700.0})
    start_ms = 3 * DAY_MS + HOUR_20 + 10 * MINUTE_MS
    # Raised open with its first minute above (the rule's one minute), closed at its end.
    assert [(s.rule, s.level, s.status, s.started_at_ms, s.ended_at_ms) for s in spikes] == [
        (SITE_BASELINE_RULE, "site", "open", start_ms, None),
        (SITE_BASELINE_RULE, "site", "closed", start_ms, start_ms + 2 * MINUTE_MS),
    ]
    assert [(s.peak_w, s.excess_wh) for s in spikes] == [(1600.0, 100 / 60), (1700.0, 300 / 60)]
    assert spikes[1].threshold_w == 1500.0


def test_nothing_fires_before_three_days_are_learnt() -> None:
    assert days(3, {10: 1600.0, 11: 1700.0}) == []


def test_the_baseline_is_per_hour_of_day() -> None:
    # 1000 W at 20:00 is normal; the same 1000 W at 03:00 (learnt 100 W) is a spike.
    state: SiteDemandState | None = None
    spikes: list[EnergySpike] = []
    for minute in range(4 * 24 * 60):
        start_ms = minute * MINUTE_MS
        in_hour = HOUR_20 <= start_ms % DAY_MS < HOUR_20 + HOUR_MS
        demand = 1000.0 if in_hour else 100.0
        if (
            start_ms // DAY_MS == 3
            and 3 * HOUR_MS <= start_ms % DAY_MS < 3 * HOUR_MS + 2 * MINUTE_MS
        ):
            demand = 1000.0
        state, new = site_demand_step(
            state, site_id="s", minute_start_ms=start_ms, demand_w=demand, limits=LIMITS
        )
        spikes.extend(new)
    assert [(s.status, s.started_at_ms, s.threshold_w) for s in spikes] == [
        ("open", 3 * DAY_MS + 3 * HOUR_MS, 300.0),
        ("closed", 3 * DAY_MS + 3 * HOUR_MS, 300.0),
    ]


@settings(max_examples=200, deadline=None)
@given(
    demands=st.lists(st.one_of(st.none(), st.sampled_from([900.0, 1000.0, 1001.0, 1500.0]))),
    min_minutes=st.integers(1, 4),
)
def test_every_site_episode_is_raised_once_open_when_confirmed_and_then_closed_once(
    demands: list[float | None], min_minutes: int
) -> None:
    limits = SiteLimits(1000.0, min_spike_ms=min_minutes * MINUTE_MS)
    state: SiteDemandState | None = None
    versions: dict[str, list[tuple[int, EnergySpike]]] = {}
    for minute, demand in enumerate(demands):
        if demand is None:
            continue  # no data that minute
        start_ms = minute * MINUTE_MS
        state, new = site_demand_step(
            state, site_id="s", minute_start_ms=start_ms, demand_w=demand, limits=limits
        )
        for spike in new:
            versions.setdefault(spike.event_id, []).append((start_ms, spike))
    for seen in versions.values():
        (raised_at_ms, raised), *rest = seen
        # Open at the minute that brought it to the rule's length, never later or earlier.
        assert raised.status == "open" and raised.ended_at_ms is None
        assert raised_at_ms + MINUTE_MS - raised.started_at_ms == limits.min_spike_ms
        assert len(rest) <= 1
        if rest:
            closed = rest[0][1]
            assert closed.status == "closed" and closed.ended_at_ms is not None
            assert closed.ended_at_ms - closed.started_at_ms >= limits.min_spike_ms
            assert closed.peak_w >= raised.peak_w and closed.excess_wh >= raised.excess_wh
            assert closed.threshold_w == raised.threshold_w


def test_removed_limits_close_the_raised_episode_at_the_end_of_the_last_minute_judged() -> None:
    limits = SiteLimits(1000.0)
    state: SiteDemandState | None = None
    raised: list[EnergySpike] = []
    for minute, demand in enumerate([900.0, 1200.0, 1300.0]):
        state, new = site_demand_step(
            state, site_id="s", minute_start_ms=minute * MINUTE_MS, demand_w=demand, limits=limits
        )
        raised.extend(new)
    assert [s.status for s in raised] == ["open"]
    left, ended = site_limits_removed(state, site_id="s")
    assert [(s.status, s.started_at_ms, s.ended_at_ms, s.peak_w, s.rule) for s in ended] == [
        ("closed", MINUTE_MS, 3 * MINUTE_MS, 1300.0, SITE_DEMAND_RULE)
    ]
    assert ended[0].event_id == raised[0].event_id
    assert ended[0].excess_wh == 500 / 60
    assert left is not None and left.spike is None and left.last_minute_ms == 2 * MINUTE_MS
    # Nothing more to end: no event twice.
    assert site_limits_removed(left, site_id="s") == (left, [])


def test_removed_limits_drop_an_unconfirmed_short_episode_and_leave_a_quiet_site_alone() -> None:
    limits = SiteLimits(1000.0, min_spike_ms=3 * MINUTE_MS)
    state, new = site_demand_step(
        None, site_id="s", minute_start_ms=0, demand_w=1200.0, limits=limits
    )
    assert new == [] and state.spike is not None
    left, ended = site_limits_removed(state, site_id="s", min_spike_ms=3 * MINUTE_MS)
    assert ended == [] and left is not None and left.spike is None
    quiet, _ = site_demand_step(None, site_id="s", minute_start_ms=0, demand_w=10.0, limits=limits)
    assert site_limits_removed(quiet, site_id="s") == (quiet, [])
    assert site_limits_removed(None, site_id="s") == (None, [])


def test_a_site_is_complete_until_the_minute_of_its_least_advanced_asset() -> None:
    sources = SiteSources(since_ms=0)
    assert complete_until_ms(sources, 10 * MINUTE_MS, 0) is None  # no asset: nothing known
    assert source_moved(sources, None, 65_000)  # lamp a: minute 1
    assert source_moved(sources, None, 70_000)  # lamp b: minute 1
    assert sources.minutes == {MINUTE_MS: 2}
    assert not source_moved(sources, 65_000, 110_000)  # a, still in minute 1: nothing moves
    assert source_moved(sources, 110_000, 130_000)  # a: minute 2
    assert sources.minutes == {MINUTE_MS: 1, 2 * MINUTE_MS: 1}
    # b has no reading past minute 1's start: only minute 0 is complete.
    assert complete_until_ms(sources, 130_000, 0) == MINUTE_MS
    assert source_moved(sources, 70_000, 190_000)  # b: minute 3
    assert complete_until_ms(sources, 190_000, 0) == 2 * MINUTE_MS
    assert source_moved(sources, 130_000, None)  # a retired
    assert sources.minutes == {3 * MINUTE_MS: 1}
    assert complete_until_ms(sources, 190_000, 0) == 3 * MINUTE_MS


def test_a_site_known_for_less_than_the_warmup_is_not_complete() -> None:
    sources = SiteSources(since_ms=5 * MINUTE_MS)
    source_moved(sources, None, 5 * MINUTE_MS)
    source_moved(sources, 5 * MINUTE_MS, 9 * MINUTE_MS)
    assert complete_until_ms(sources, 9 * MINUTE_MS, 5 * MINUTE_MS) is None
    assert complete_until_ms(sources, 10 * MINUTE_MS, 5 * MINUTE_MS) == 9 * MINUTE_MS
