"""The current-state deadband: what an operator sees is written, drift is not, and nothing
stands longer than the refresh."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.deadband import Deadband, worth_writing, written_of
from domain.events import AssetState

BAND = Deadband(min_w=2.0, fraction=0.05, refresh_ms=900_000)


def state(ts_ms: int, power_w: float = 60.0, *, on: bool = True, dim: int = 100) -> AssetState:
    return AssetState("s", "b", "r", "lamp", ts_ms, power_w, on, dim, None)


def test_what_an_operator_sees_is_written_and_drift_is_not() -> None:
    written = written_of(state(0))
    assert worth_writing(None, written, BAND)
    assert not worth_writing(written, state(60_000, 62.9), BAND)  # within 5 % of 60 W
    assert worth_writing(written, state(60_000, 63.1), BAND)
    assert worth_writing(written, state(60_000, on=False), BAND)
    assert worth_writing(written, state(60_000, dim=80), BAND)
    faulted = AssetState("s", "b", "r", "lamp", 60_000, 60.0, True, 100, "E42")
    assert worth_writing(written, faulted, BAND)
    assert worth_writing(written, state(900_000), BAND)  # the refresh
    assert not worth_writing(written, state(0, on=False), BAND)  # never backwards


@given(
    written_w=st.floats(0, 2_000),
    new_w=st.floats(0, 2_000),
    age_ms=st.integers(1, 2_000_000),
)
def test_a_state_is_written_exactly_when_power_leaves_the_band_or_the_refresh_is_due(
    written_w: float, new_w: float, age_ms: int
) -> None:
    decided = worth_writing(written_of(state(0, written_w)), state(age_ms, new_w), BAND)
    outside = abs(new_w - written_w) > max(2.0, 0.05 * written_w)
    assert decided == (outside or age_ms >= BAND.refresh_ms)
