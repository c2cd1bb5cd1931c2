"""Which archived records the survivor puts into its stream after a failover: the moved sites'
readings from the start time on, and every unreadable record of a moved site (so that it is
dead-lettered with its bytes, not dropped)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.clock import HOUR_MS
from core.records import Record
from domain.telemetry import Reading, encode_reading
from lighting.archive_tail import in_tail, reading_ts_ms

ARRIVAL_MS = 1_765_000_000_000
SITES = {"site-a", "site-b"}


def record(site: str, ts_ms: int, data: bytes | None = None) -> Record:
    reading = Reading("site-x", "b1", "r1", "lamp-1", ts_ms, 60.0, 230.0, 0.26, 0.0, True, 100)
    payload = encode_reading(reading) if data is None else data
    return Record("shard-0", 1, 0, site, payload, ARRIVAL_MS)


@given(
    site=st.sampled_from(["site-a", "site-b", "site-c"]),
    age_ms=st.integers(0, 3 * HOUR_MS),
    horizon_ms=st.integers(0, 3 * HOUR_MS),
)
def test_a_reading_is_in_the_tail_when_its_site_moved_and_it_is_not_older_than_the_start(
    site: str, age_ms: int, horizon_ms: int
) -> None:
    r = record(site, ARRIVAL_MS - age_ms)
    assert reading_ts_ms(r) == ARRIVAL_MS - age_ms
    from_ts_ms = ARRIVAL_MS - horizon_ms
    assert in_tail(r, SITES, from_ts_ms) == (site in SITES and age_ms <= horizon_ms)


@given(data=st.binary(max_size=200))
def test_an_unreadable_record_of_a_moved_site_goes_through_and_of_another_site_does_not(
    data: bytes,
) -> None:
    r = record("site-a", 0, data)
    if reading_ts_ms(r) is None:
        assert in_tail(r, SITES, ARRIVAL_MS)
    assert not in_tail(record("site-c", 0, data), SITES, 0)
