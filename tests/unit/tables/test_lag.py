"""TypicalLag: the upper middle of the latest lags (whole seconds) of the last SOURCES sources
seen within HORIZON_MS of arrival, one vote per source whatever a few show or however many
records each sends; kept in a snapshot as `samples()` and loaded back to go on exactly as
before."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.lag import HORIZON_MS, SOURCES, TypicalLag, source_id


def test_no_lag_before_any_record() -> None:
    assert TypicalLag().median_ms() is None


def expected_ms(records: list[tuple[int, int, int]]) -> int:
    """The reference, for arrivals that never go back: the latest lag of each of the last
    SOURCES distinct sources, of those whose latest record arrived at most HORIZON_MS before
    the last record; upper middle."""
    latest: dict[int, tuple[int, int]] = {}
    for source, lag, arrival in records:
        latest.pop(source, None)
        latest[source] = (lag // 1_000, arrival)
    now = records[-1][2]
    recent = list(latest.values())[-SOURCES:]
    held = sorted(lag_s for lag_s, arrival in recent if arrival >= now - HORIZON_MS)
    return held[len(held) // 2] * 1_000


def with_arrivals(records: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(source, lag, gap to the previous arrival) -> (source, lag, arrival)."""
    arrival = 0
    out = []
    for source, lag, gap in records:
        arrival += gap
        out.append((source, lag, arrival))
    return out


records = st.lists(
    st.tuples(
        st.integers(0, 2 * SOURCES),
        st.integers(-(2**40), 2**40),
        st.sampled_from([0, 1, 1_000, HORIZON_MS // 16, HORIZON_MS // 2, HORIZON_MS]),
    ),
    min_size=1,
    max_size=4 * SOURCES,
).map(with_arrivals)


@given(records, st.data())
def test_the_typical_lag_is_the_middle_of_the_recent_sources_latest_lags(
    given_records: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    typical = TypicalLag()
    for index, (source, lag, arrival) in enumerate(given_records):
        assert typical.add(source, lag, arrival) == expected_ms(given_records[: index + 1])
    assert typical.median_ms() == expected_ms(given_records)
    # Loaded from its samples, it goes on exactly as the one that kept running.
    loaded = TypicalLag()
    loaded.load(typical.samples())
    assert loaded.samples() == typical.samples()
    last = given_records[-1][2]
    for source, lag, arrival in data.draw(records):
        assert loaded.add(source, lag, last + arrival) == typical.add(source, lag, last + arrival)
    assert loaded.samples() == typical.samples()


def test_a_source_not_heard_from_within_the_horizon_has_no_vote() -> None:
    typical = TypicalLag()
    for source in range(40):  # a gateway's buffer, half an hour old, then nothing more
        typical.add(source, 1_800_000, 0)
    for source in (100, 101, 102):
        typical.add(source, 2_000, HORIZON_MS)
    assert typical.median_ms() == 1_800_000
    typical.add(100, 2_000, HORIZON_MS + 1)
    assert typical.median_ms() == 2_000
    assert [source for source, _, _ in typical.samples()] == [101, 102, 100]


def test_samples_kept_without_arrivals_count_as_seen_by_the_next_record() -> None:
    typical = TypicalLag()
    typical.load([(1, 300, None), (2, 300, None), (3, 2, 5 * HORIZON_MS)])
    assert typical.samples() == [(1, 300, None), (2, 300, None), (3, 2, 5 * HORIZON_MS)]
    assert typical.add(4, 2_000, 5 * HORIZON_MS) == 300_000
    assert typical.samples()[:2] == [(1, 300, 5 * HORIZON_MS), (2, 300, 5 * HORIZON_MS)]
    assert typical.add(4, 2_000, 6 * HORIZON_MS + 1) == 2_000


def test_a_few_sources_far_ahead_or_behind_do_not_move_it() -> None:
    typical = TypicalLag()
    for source in range(SOURCES):
        lag = -240_000 if source % 8 == 0 else 3_600_000 if source % 8 == 1 else 2_000
        typical.add(source, lag, 0)
    assert typical.median_ms() == 2_000


def test_one_source_sending_many_records_has_one_vote() -> None:
    typical = TypicalLag()
    for source in range(3):
        typical.add(source, 302_000, 0)
    for _ in range(100):  # a gateway's buffer from a device whose clock is 300 s fast
        typical.add(99, 2_000, 0)
    assert typical.median_ms() == 302_000


def test_a_lag_that_grows_for_every_source_at_once_is_followed_at_once() -> None:
    # Three honest devices and one 300 s fast for a while, then the producer pauses 300 s:
    # the fast device's new lag is the honest devices' old one.
    typical = TypicalLag()
    for _ in range(20):
        for source in range(3):
            typical.add(source, 2_000, 0)
    for source in range(3):
        typical.add(source, 302_000, 0)
    typical.add(3, 2_000, 0)
    assert typical.median_ms() == 302_000


def test_source_ids_are_the_same_in_every_process() -> None:
    assert source_id("lamp-1") == 0x86EF2D24  # crc32
    assert source_id("lamp-1") != source_id("lamp-2")
