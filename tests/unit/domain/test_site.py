"""The site's learnt hour-of-day baseline: near-misses stay quiet, a real excess fires."""

from __future__ import annotations

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import EnergySpike
from domain.site import SITE_BASELINE_RULE, SiteDemandState, SiteLimits, site_demand_step

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
    assert [(s.rule, s.level, s.started_at_ms, s.ended_at_ms) for s in spikes] == [
        (
            SITE_BASELINE_RULE,
            "site",
            3 * DAY_MS + HOUR_20 + 10 * MINUTE_MS,
            3 * DAY_MS + HOUR_20 + 12 * MINUTE_MS,
        )
    ]
    assert spikes[0].threshold_w == 1500.0 and spikes[0].peak_w == 1700.0


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
    assert [(s.started_at_ms, s.threshold_w) for s in spikes] == [(3 * DAY_MS + 3 * HOUR_MS, 300.0)]
