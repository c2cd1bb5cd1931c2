"""The learnt baseline held as one flat tuple (`domain.rules.limits.Baseline`) instead of a dict:
it answers every lookup as the dict did, a rule state snapshotted with the dict (the stored form
before `Baseline`) restores and goes on to the same events and thresholds, and the compact form
round-trips."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.rules import AssetRuleState, Limits, step
from domain.rules.limits import Baseline, baseline_of
from domain.rules.spikes import dim_bucket, learn
from domain.telemetry import Reading
from tables.keys import ChangedKeys
from tables.plain import PlainPartition
from tables.snapshot import apply_blob, encode_state

IDS = ("s", "b", "r", "a")
LIMITS = Limits(
    spike_threshold_w=125.0,
    min_spike_ms=60_000,
    baseline_factor=1.5,
    baseline_warmup=3,
    dim_bucket_pct=10,
)

readings = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=400.0, allow_nan=False),
        st.sampled_from([0, 5, 10, 35, 50, 90, 100]),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


def as_readings(values: list[tuple[float, int, bool]]) -> list[Reading]:
    return [
        Reading(*IDS, (k + 1) * 60_000, p, 230.0, p / 230.0, 0.0, on, dim, None)
        for k, (p, dim, on) in enumerate(values)
    ]


def learn_into_dict(
    baseline: dict[int, tuple[float, int]], reading: Reading, limits: Limits
) -> dict[int, tuple[float, int]]:
    """`learn` as it was when the baseline was a dict (the reference)."""
    bucket = dim_bucket(reading.dim_level, limits)
    learnt = baseline.get(bucket)
    if learnt is None:
        updated = (reading.power_w, 1)
    else:
        ewma_w, count = learnt
        updated = (ewma_w + limits.baseline_alpha * (reading.power_w - ewma_w), count + 1)
    out = dict(baseline)
    out[bucket] = updated
    return out


@settings(max_examples=200, deadline=None)
@given(readings)
def test_the_compact_baseline_answers_as_the_dict_did(
    values: list[tuple[float, int, bool]],
) -> None:
    compact: Baseline | dict[int, tuple[float, int]] = {}
    reference: dict[int, tuple[float, int]] = {}
    for r in as_readings(values):
        compact = learn(compact, r, LIMITS)
        reference = learn_into_dict(reference, r, LIMITS)
        assert isinstance(compact, Baseline)
        assert compact.items() == list(reference.items())  # values and order, to the bit
        assert len(compact) == len(reference)
        for bucket in range(0, 101, 5):
            assert compact.get(bucket) == reference.get(bucket)
        assert baseline_of(reference) == compact


def dict_form(state: AssetRuleState) -> AssetRuleState:
    """The state as the code before `Baseline` held (and stored) it."""
    return msgspec.structs.replace(state, baseline=dict(state.baseline.items()))


def run(state: AssetRuleState | None, rs: list[Reading]) -> tuple[AssetRuleState | None, list[Any]]:
    events: list[Any] = []
    for r in rs:
        state, out = step(state, r, LIMITS)
        events.extend(out)
    return state, events


@settings(max_examples=150, deadline=None)
@given(readings, st.integers(min_value=0, max_value=40))
def test_a_state_stored_with_the_dict_restores_and_goes_on_alike(
    values: list[tuple[float, int, bool]], cut: int
) -> None:
    rs = as_readings(values)
    whole, whole_events = run(None, rs)
    before, events = run(None, rs[:cut])
    if before is not None:
        # Stored by the old code (a map, in a table snapshot), restored by this one.
        part = PlainPartition()
        part.put("a", dict_form(before), "site")
        blob = encode_state("shard-0", {"asset_rules": part}, {}, changed=None)
        restored = PlainPartition(changes=ChangedKeys())
        apply_blob("shard-0", blob, {"asset_rules": restored}, {}, {"asset_rules": AssetRuleState})
        before = restored.data["a"]
        assert isinstance(before.baseline, dict)
    after, later_events = run(before, rs[cut:])
    assert events + later_events == whole_events
    assert after is not None and whole is not None
    assert dict(after.baseline.items()) == dict(whole.baseline.items())
    # The compact form round-trips through both codecs.
    for codec in (msgspec.msgpack, msgspec.json):
        assert codec.decode(codec.encode(whole), type=AssetRuleState) == whole
