"""The grace boost (`App.boost_grace`, `tables.partition.GraceBoost`): extra grace while the
event clock is before a time, then the window's own grace again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.clock import HOUR_MS, MINUTE_MS
from tables.partition import NO_BOOST, GraceBoost, WindowedPartition
from tables.windows import tumbling

HOURLY = tumbling(HOUR_MS, grace_ms=2 * MINUTE_MS)


def add(part: WindowedPartition, t: int, boost: GraceBoost = NO_BOOST) -> bool:
    return part.update(HOURLY, key="a", time_ms=t, pk="p", default=int, amount=1, boost=boost)


def test_a_reading_an_hour_old_is_late_without_the_boost_and_taken_with_it() -> None:
    now = 10 * HOUR_MS + 30 * MINUTE_MS
    plain, boosted = WindowedPartition(), WindowedPartition()
    boost = (68 * MINUTE_MS, now + 70 * MINUTE_MS)
    assert add(plain, now) and add(boosted, now, boost)
    old = now - 50 * MINUTE_MS
    assert not add(plain, old)
    assert add(boosted, old, boost)
    # Its window stays open while the boost lasts...
    assert boosted.close(HOURLY, boost)[0] == []
    # ...and the grace returns by itself once the clock passes the boost's end.
    later = now + 71 * MINUTE_MS
    assert add(boosted, later, boost)
    closed = boosted.close(HOURLY, boost)[0]
    assert [rng for rng, _ in closed] == [
        (9 * HOUR_MS, 10 * HOUR_MS - 1),
        (10 * HOUR_MS, 11 * HOUR_MS - 1),
    ]
    assert not add(boosted, old, boost)


@given(
    st.lists(st.integers(min_value=0, max_value=6 * HOUR_MS), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=2 * HOUR_MS),
    st.integers(min_value=0, max_value=8 * HOUR_MS),
)
def test_a_boost_only_ever_takes_more_and_none_changes_nothing(
    times: list[int], extra: int, until: int
) -> None:
    """Any readings: with a boost, every update taken without it is taken too, and a boost of
    zero extra decides exactly as no boost."""
    plain, boosted, zero = WindowedPartition(), WindowedPartition(), WindowedPartition()
    for t in times:
        taken = add(plain, t)
        assert add(boosted, t, (extra, until)) or not taken
        assert add(zero, t, (0, until)) == taken
        plain.close(HOURLY)
        boosted.close(HOURLY, (extra, until))
        zero.close(HOURLY, (0, until))
