"""The onset delay of `evaluate --realistic` from the first reading that showed an anomaly:
the reading it is counted from, for every kind and wherever the episode falls among the
readings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sim.realistic import Episode
from sim.realistic_eval import first_showing

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
