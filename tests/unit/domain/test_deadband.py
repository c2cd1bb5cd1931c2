"""The current-state deadband: what an operator sees is written, drift is not, and nothing
stands longer than the refresh, which each asset keeps at its own phase."""

from __future__ import annotations

import math
from collections import Counter

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.deadband import (
    Deadband,
    next_written,
    refresh_due_ms,
    refresh_phase_ms,
    worth_writing,
    written_of,
)
from domain.events import AssetState
from domain.rules.limits import WrittenState

BAND = Deadband(min_w=2.0, fraction=0.05, refresh_ms=900_000)


def state(
    ts_ms: int, power_w: float = 60.0, *, on: bool = True, dim: int = 100, asset: str = "lamp"
) -> AssetState:
    return AssetState("s", "b", "r", asset, ts_ms, power_w, on, dim, None)


def test_what_an_operator_sees_is_written_and_drift_is_not() -> None:
    written = written_of(state(0))
    assert worth_writing(None, written, BAND)
    assert not worth_writing(written, state(60_000, 62.9), BAND)  # within 5 % of 60 W
    assert worth_writing(written, state(60_000, 63.1), BAND)
    assert worth_writing(written, state(60_000, on=False), BAND)
    assert worth_writing(written, state(60_000, dim=80), BAND)
    faulted = AssetState("s", "b", "r", "lamp", 60_000, 60.0, True, 100, "E42")
    assert worth_writing(written, faulted, BAND)
    due_ms = refresh_due_ms(0, "lamp", BAND.refresh_ms)
    assert not worth_writing(written, state(due_ms - 1), BAND)
    assert worth_writing(written, state(due_ms), BAND)  # the refresh, at the asset's phase
    assert worth_writing(written, state(900_000), BAND)  # never later than a period
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
    assert decided == (outside or age_ms >= refresh_due_ms(0, "lamp", BAND.refresh_ms))


def test_the_phase_is_a_stable_hash_of_the_asset_id_not_pythons_salted_one() -> None:
    # Fixed values: every process, run and Python version computes the same phases, so a
    # restored shard refreshes exactly when the one that stopped would have.
    assert refresh_phase_ms("lamp-1", 900_000) == 52_446
    assert refresh_phase_ms("s001-b1-r1-lamp-1", 900_000) == 545_271
    assert refresh_phase_ms("lamp-1", 0) == 0


@given(
    written_ms=st.integers(0, 2**42),
    asset=st.text(max_size=40),
    refresh_ms=st.integers(1, 10**8),
)
def test_a_refresh_falls_due_within_one_period_of_any_write_at_the_assets_phase(
    written_ms: int, asset: str, refresh_ms: int
) -> None:
    due_ms = refresh_due_ms(written_ms, asset, refresh_ms)
    assert written_ms < due_ms <= written_ms + refresh_ms
    assert (due_ms - refresh_phase_ms(asset, refresh_ms)) % refresh_ms == 0
    band = Deadband(refresh_ms=refresh_ms)
    written = written_of(state(written_ms, asset=asset))
    assert worth_writing(written, state(due_ms, asset=asset), band)
    if due_ms - 1 > written_ms:
        assert not worth_writing(written, state(due_ms - 1, asset=asset), band)


@settings(max_examples=60, deadline=None)
@given(
    assets=st.sets(st.text(min_size=1, max_size=16), min_size=100, max_size=250),
    written_ms=st.integers(0, 2**42),
    refresh_ms=st.integers(1_000, 3_600_000),
    step_fraction=st.integers(50, 5_000),
    slices=st.integers(2, 8),
)
def test_a_fleet_written_together_refreshes_spread_over_the_period_and_stays_spread(
    assets: set[str], written_ms: int, refresh_ms: int, step_fraction: int, slices: int
) -> None:
    """Every asset reads drift (the same power) every `step_ms`, all first written at one
    instant; over 3 periods no k-th of the period holds more than its share of the refreshes
    plus a statistical slack (a burst of the whole fleet fails it), and no asset's gap between
    writes is longer than the period plus one reading step (the refresh is due within one
    period; it is written at the first reading at or after that)."""
    band = Deadband(refresh_ms=refresh_ms)
    step_ms = max(1, refresh_ms // step_fraction)
    periods = 3
    end_ms = written_ms + periods * refresh_ms
    slice_ms = refresh_ms / slices
    per_slice: Counter[int] = Counter()
    for asset in assets:
        written = written_of(state(written_ms, asset=asset))
        while True:
            due_ms = refresh_due_ms(written.ts_ms, asset, refresh_ms)
            assert due_ms - written.ts_ms <= refresh_ms
            # The first reading of the asset's cadence at or after the deadline.
            at_ms = written_ms + math.ceil((due_ms - written_ms) / step_ms) * step_ms
            if at_ms >= end_ms:
                break
            before_ms = at_ms - step_ms
            if before_ms > written.ts_ms:
                assert not worth_writing(written, state(before_ms, asset=asset), band)
            assert worth_writing(written, state(at_ms, asset=asset), band)
            assert at_ms - written.ts_ms < refresh_ms + step_ms
            per_slice[int((at_ms - written_ms) // slice_ms)] += 1
            written = written_of(state(at_ms, asset=asset))
    share = math.ceil(len(assets) / slices)
    slack = math.ceil(4 * math.sqrt(len(assets) / slices)) + 2
    assert max(per_slice.values()) <= share + slack


def test_a_change_postpones_the_refresh_a_full_period_and_the_next_refresh_is_at_the_phase() -> (
    None
):
    phase_ms = refresh_phase_ms("lamp", BAND.refresh_ms)
    first = next_written(None, state(phase_ms), BAND)
    assert first is not None and first.phased
    change_ms = phase_ms + 3 * 60_000
    changed = next_written(first, state(change_ms, on=False), BAND)
    assert changed is not None and not changed.phased
    # Not at the phase instant after the change: a full period after it.
    assert next_written(changed, state(phase_ms + BAND.refresh_ms, on=False), BAND) is None
    refreshed = next_written(changed, state(change_ms + BAND.refresh_ms, on=False), BAND)
    assert refreshed is not None and refreshed.phased
    assert (
        next_written(refreshed, state(phase_ms + 2 * BAND.refresh_ms - 1, on=False), BAND) is None
    )
    assert next_written(refreshed, state(phase_ms + 2 * BAND.refresh_ms, on=False), BAND)


def test_a_snapshot_from_before_the_phase_restores_its_written_state_as_phased() -> None:
    old = msgspec.msgpack.encode([1_000, 60.0, True, 100, None])  # the five fields it had
    assert msgspec.msgpack.decode(old, type=WrittenState) == WrittenState(1_000, 60.0, True, 100)
    assert msgspec.msgpack.decode(old, type=WrittenState).phased


@settings(max_examples=200)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(1, 400_000),  # event time since the previous reading
            st.booleans(),  # on
            st.sampled_from([60.0, 61.0, 70.0]),  # power: drift or beyond the deadband
        ),
        min_size=1,
        max_size=80,
    ),
    asset=st.text(max_size=10),
)
def test_no_reading_a_period_after_the_last_write_goes_unwritten(
    steps: list[tuple[int, bool, float]], asset: str
) -> None:
    written = next_written(None, state(0, asset=asset), BAND)
    assert written is not None
    ts_ms = 0
    for gap_ms, on, power_w in steps:
        ts_ms += gap_ms
        chosen = next_written(written, state(ts_ms, power_w, on=on, asset=asset), BAND)
        if ts_ms - written.ts_ms >= BAND.refresh_ms:
            assert chosen is not None
        if chosen is not None:
            written = chosen
