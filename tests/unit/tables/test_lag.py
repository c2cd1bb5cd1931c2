"""TypicalLag: the upper middle of the latest lags (whole seconds) of the last SOURCES sources,
one vote per source whatever a few show or however many records each sends; kept in a
snapshot as `samples()` and loaded back to go on exactly as before."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tables.lag import SOURCES, TypicalLag, source_id


def test_no_lag_before_any_record() -> None:
    assert TypicalLag().median_ms() is None


def expected_ms(records: list[tuple[int, int]]) -> int:
    """The reference: each of the last SOURCES distinct sources' latest lag, upper middle."""
    latest: dict[int, int] = {}
    for source, lag in records:
        latest.pop(source, None)
        latest[source] = lag // 1_000
    held = sorted(list(latest.values())[-SOURCES:])
    return held[len(held) // 2] * 1_000


records = st.lists(
    st.tuples(st.integers(0, 2 * SOURCES), st.integers(-(2**40), 2**40)),
    min_size=1,
    max_size=4 * SOURCES,
)


@given(records, st.data())
def test_the_typical_lag_is_the_middle_of_the_sources_latest_lags(
    given_records: list[tuple[int, int]], data: st.DataObject
) -> None:
    typical = TypicalLag()
    for index, (source, lag) in enumerate(given_records):
        assert typical.add(source, lag) == expected_ms(given_records[: index + 1])
    assert typical.median_ms() == expected_ms(given_records)
    # Loaded from its samples, it goes on exactly as the one that kept running.
    loaded = TypicalLag()
    loaded.load(typical.samples())
    assert loaded.samples() == typical.samples()
    for source, lag in data.draw(records):
        assert loaded.add(source, lag) == typical.add(source, lag)
    assert loaded.samples() == typical.samples()


def test_a_few_sources_far_ahead_or_behind_do_not_move_it() -> None:
    typical = TypicalLag()
    for source in range(SOURCES):
        lag = -240_000 if source % 8 == 0 else 3_600_000 if source % 8 == 1 else 2_000
        typical.add(source, lag)
    assert typical.median_ms() == 2_000


def test_one_source_sending_many_records_has_one_vote() -> None:
    typical = TypicalLag()
    for source in range(3):
        typical.add(source, 302_000)
    for _ in range(100):  # a gateway's buffer from a device whose clock is 300 s fast
        typical.add(99, 2_000)
    assert typical.median_ms() == 302_000


def test_a_lag_that_grows_for_every_source_at_once_is_followed_at_once() -> None:
    # Three honest devices and one 300 s fast for a while, then the producer pauses 300 s:
    # the fast device's new lag is the honest devices' old one.
    typical = TypicalLag()
    for _ in range(20):
        for source in range(3):
            typical.add(source, 2_000)
    for source in range(3):
        typical.add(source, 302_000)
    typical.add(3, 2_000)
    assert typical.median_ms() == 302_000


def test_source_ids_are_the_same_in_every_process() -> None:
    assert source_id("lamp-1") == 0x86EF2D24  # crc32
    assert source_id("lamp-1") != source_id("lamp-2")
