"""TypicalLag: the larger median of the last LAG_SAMPLES and RECENT_SAMPLES lags in whole
seconds, whatever a few records show; kept in a snapshot as `samples()` and loaded back to go
on exactly as before."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.lag import LAG_SAMPLES, RECENT_SAMPLES, RecentStamps, TypicalLag


def test_no_lag_before_any_record() -> None:
    assert TypicalLag().median_ms() is None


def median_s(lags: list[int]) -> int:
    ordered = sorted(lag // 1_000 for lag in lags)
    return ordered[(len(ordered) - 1) // 2]


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=3 * LAG_SAMPLES), st.data())
def test_the_typical_lag_is_the_larger_median_of_the_last_and_the_newest_samples(
    lags: list[int], data: st.DataObject
) -> None:
    typical = TypicalLag()
    for index, lag in enumerate(lags):
        typical_ms = typical.add(lag)
        held = lags[max(0, index + 1 - LAG_SAMPLES) : index + 1]
        expected = max(median_s(held), median_s(held[-RECENT_SAMPLES:])) * 1_000
        assert typical_ms == typical.median_ms() == expected
    assert typical.samples() == [lag // 1_000 for lag in lags[-LAG_SAMPLES:]]
    # Loaded from its samples, it goes on exactly as the one that kept running.
    loaded = TypicalLag()
    loaded.load(typical.samples())
    for lag in data.draw(st.lists(st.integers(-(2**40), 2**40), max_size=LAG_SAMPLES)):
        assert loaded.add(lag) == typical.add(lag)
        assert loaded.samples() == typical.samples()


def test_a_few_records_far_ahead_or_behind_do_not_move_it() -> None:
    typical = TypicalLag()
    for i in range(LAG_SAMPLES):
        typical.add(-240_000 if i % 8 == 0 else 3_600_000 if i % 8 == 1 else 2_000)
    assert typical.median_ms() == 2_000


def test_a_lag_that_grows_for_every_device_at_once_is_followed_at_once() -> None:
    # Three honest devices and one 300 s fast for a while, then the producer pauses 300 s:
    # the fast device's new lag is the honest devices' old one.
    typical = TypicalLag()
    for _ in range(LAG_SAMPLES // 4):
        for lag in (2_000, 2_000, 2_000, 2_000):
            typical.add(lag)
    for _ in range(RECENT_SAMPLES // 4):
        for lag in (302_000, 302_000, 302_000, 2_000):
            typical.add(lag)
    assert typical.median_ms() == 302_000


@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=3 * RECENT_SAMPLES), st.data())
def test_recent_stamps_give_the_lower_middle_of_the_newest(
    stamps: list[int], data: st.DataObject
) -> None:
    recent = RecentStamps()
    for index, stamp in enumerate(stamps):
        held = sorted(stamps[max(0, index + 1 - RECENT_SAMPLES) : index + 1])
        assert recent.add(stamp) == held[(len(held) - 1) // 2]
    loaded = RecentStamps()
    loaded.load(recent.samples())
    for stamp in data.draw(st.lists(st.integers(0, 2**62), max_size=RECENT_SAMPLES)):
        assert loaded.add(stamp) == recent.add(stamp)
