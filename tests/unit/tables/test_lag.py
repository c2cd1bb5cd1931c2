"""TypicalLag: the median of the last LAG_SAMPLES lags, whatever a few records show."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.lag import LAG_SAMPLES, TypicalLag


def test_no_lag_before_any_record() -> None:
    assert TypicalLag().median_ms() is None


@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=3 * LAG_SAMPLES))
def test_the_median_of_the_last_samples(lags: list[int]) -> None:
    typical = TypicalLag()
    for lag in lags:
        typical.add(lag)
    kept = sorted(lags[-LAG_SAMPLES:])
    assert typical.median_ms() == kept[(len(kept) - 1) // 2]


def test_a_few_records_far_ahead_or_behind_do_not_move_it() -> None:
    typical = TypicalLag()
    for i in range(LAG_SAMPLES):
        typical.add(-240_000 if i % 8 == 0 else 3_600_000 if i % 8 == 1 else 2_000)
    assert typical.median_ms() == 2_000
