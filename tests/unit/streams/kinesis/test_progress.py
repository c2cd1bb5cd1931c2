"""Replay progress: rate and time left per shard, from records counted and MillisBehindLatest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.kinesis.progress import ShardSample, duration, progress_line, rates


def test_time_left_follows_how_fast_the_shard_gains_on_the_tip() -> None:
    before = {"s-1": ShardSample(1_000, 600_000)}
    after = {"s-1": ShardSample(3_000, 400_000)}  # 200 s gained in 10 s: 20x real time
    [rate] = rates(before, after, 10.0)
    assert (rate.records_per_s, rate.millis_behind, rate.left_s) == (200.0, 400_000, 20.0)
    assert progress_line(rate) == (
        "s-1: 3,000 records read, 200 records/s, 6m40s behind the tip, about 20s left"
    )


def test_a_shard_at_the_tip_has_nothing_left_and_one_not_gaining_has_no_estimate() -> None:
    before = {"a": ShardSample(0, 5_000), "b": ShardSample(0, 5_000), "c": ShardSample(0, None)}
    after = {"a": ShardSample(10, 0), "b": ShardSample(10, 6_000), "c": ShardSample(10, None)}
    assert [r.left_s for r in rates(before, after, 1.0)] == [0.0, None, None]


def test_a_shard_seen_for_the_first_time_counts_from_zero() -> None:
    [rate] = rates({}, {"new": ShardSample(50, 1_000)}, 5.0)
    assert (rate.records_per_s, rate.left_s) == (10.0, None)


@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**10),
    st.integers(0, 10**10),
    st.floats(0.001, 3600),
)
def test_rates_are_never_negative_time_left(
    r0: int, r1: int, b0: int, b1: int, elapsed_s: float
) -> None:
    [rate] = rates({"s": ShardSample(r0, b0)}, {"s": ShardSample(r1, b1)}, elapsed_s)
    assert rate.left_s is None or rate.left_s >= 0


@given(st.floats(0, 10**7))
def test_durations_are_short_and_fixed_in_form(seconds: float) -> None:
    text = duration(seconds)
    assert text[-1] in "sm" and len(text) <= 12


def test_duration_forms() -> None:
    assert [duration(None), duration(45), duration(725), duration(10_920)] == [
        "?",
        "45s",
        "12m05s",
        "3h02m",
    ]
