"""The onset delay of `evaluate --realistic` from the first reading that showed an anomaly:
the reading it is counted from, for every kind and wherever the episode falls among the
readings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import Fault
from domain.registry import SiteDefaults
from domain.rules import FLICKER, AssetRuleState, Limits, step
from domain.telemetry import Reading
from sim.realistic import Episode
from sim.realistic_eval import clock_wait_ms, first_showing, flicker_completions

times_st = st.lists(st.integers(0, 10_000), min_size=1, max_size=30, unique=True).map(sorted)


@given(
    times=times_st, start=st.integers(-100, 10_100), kind=st.sampled_from(["fault_code", "flicker"])
)
def test_an_episode_is_first_shown_by_the_first_reading_at_or_after_its_start(
    times: list[int], start: int, kind: str
) -> None:
    shown = first_showing(kind, Episode(kind, "l1", "", start, start + 500), times)
    later = [t for t in times if t >= start]
    assert shown == (later[0] if later else start)
    assert shown >= start


@given(times=times_st, start=st.integers(-100, 10_100))
def test_offline_is_first_shown_by_the_last_reading_before_the_gap(
    times: list[int], start: int
) -> None:
    shown = first_showing("offline", Episode("offline", "l1", "", start, start + 500), times)
    earlier = [t for t in times if t < start]
    assert shown == (earlier[-1] if earlier else start)
    assert shown <= start


def test_a_reading_at_the_start_itself_shows_it() -> None:
    assert (
        first_showing("fault_code", Episode("fault_code", "l1", "E1", 20, 40), [10, 20, 30]) == 20
    )


# Flicker onset from the reading that completes the rule: `flicker_completions` reads the
# rule's definition independently of `domain.rules`; on any on/off sequence it finds exactly
# the readings at which the rule opens (or re-opens) the flicker fault.
DEFAULTS = SiteDefaults("")
FLICKER_LIMITS = Limits(
    spike_threshold_w=1e9,
    flicker_toggles=DEFAULTS.flicker_toggles,
    flicker_window_ms=DEFAULTS.flicker_window_ms,
    flicker_max_on_ms=DEFAULTS.flicker_max_on_ms,
    cooldown_ms=DEFAULTS.cooldown_ms,
)


def lamp_reading(ts_ms: int, on: bool) -> Reading:
    power_w = 50.0 if on else 0.0
    return Reading("s", "b", "r", "l1", ts_ms, power_w, 230.0, power_w / 230.0, 0.0, on, 100)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1_000, 120_000), st.booleans()), min_size=1, max_size=80)
)
def test_the_completing_readings_are_those_at_which_the_rule_opens_flicker(
    steps: list[tuple[int, bool]],
) -> None:
    readings, ts_ms = [], 1_800_000_000_000
    for gap_ms, on in steps:
        ts_ms += gap_ms
        readings.append(lamp_reading(ts_ms, on))
    opened: list[int] = []
    state: AssetRuleState | None = None
    for r in readings:
        state, events = step(state, r, FLICKER_LIMITS)
        opened += [
            r.ts_ms
            for e in events
            if isinstance(e, Fault) and e.code == FLICKER and e.status == "open"
        ]
    assert flicker_completions(readings) == opened


def test_the_fourth_short_cycle_within_the_window_completes_flicker_at_its_off_reading() -> None:
    t0 = 1_800_000_000_000
    # Off, then on for 30 s and off for 60 s, four times: the cycles end at 60, 150, 240 and
    # 330 s, the fourth completing the rule.
    pattern = [(0, False)]
    for k in range(4):
        pattern += [(30_000 + k * 90_000, True), (60_000 + k * 90_000, False)]
    readings = [lamp_reading(t0 + at_ms, on) for at_ms, on in pattern]
    assert flicker_completions(readings) == [t0 + 330_000]
    # The first on-period began before the first reading: never counted; so the rule waits
    # for a fifth cycle. On-periods of 90 s (the limit) are not short.
    assert flicker_completions(readings[1:]) == []
    assert flicker_completions(
        [*readings[1:], lamp_reading(t0 + 390_000, True), lamp_reading(t0 + 420_000, False)]
    ) == [t0 + 420_000]
    slow = [lamp_reading(t0, False)]
    for k in range(6):
        slow += [lamp_reading(t0 + 10_000 + k * 100_000, True)]
        slow += [lamp_reading(t0 + 100_000 + k * 100_000, False)]
    assert flicker_completions(slow) == []

    # The window is (ts - 10 min, ts]: a cycle that ended exactly 10 min before the fourth
    # has left it; a millisecond later, it counts.
    def cycles(*ends_ms: int) -> list[Reading]:
        out = [lamp_reading(t0, False)]
        for end_ms in ends_ms:
            out += [lamp_reading(t0 + end_ms - 1_000, True), lamp_reading(t0 + end_ms, False)]
        return out

    assert flicker_completions(cycles(2_000, 562_000, 582_000, 602_000)) == []
    assert flicker_completions(cycles(2_000, 562_000, 582_000, 601_999)) == [t0 + 601_999]


@given(times=times_st, due=st.integers(-100, 10_100))
def test_a_spike_waits_for_the_first_reading_that_takes_the_clock_past_its_due_time(
    times: list[int], due: int
) -> None:
    # The shard's clock is the newest reading's time less 1 ms: it reaches the due time with
    # the first reading stamped at least 1 ms after it.
    later = [t for t in times if t - 1 >= due]
    assert clock_wait_ms(due, times) == (later[0] - due if later else 0)


def test_a_reading_stamped_at_the_due_time_does_not_yet_take_the_clock_there() -> None:
    assert clock_wait_ms(100, [90, 100, 101, 130]) == 1
    assert clock_wait_ms(100, [90, 100]) == 0
