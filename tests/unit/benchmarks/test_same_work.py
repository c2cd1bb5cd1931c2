"""The benches' shared per-record work (`benchmarks.same_work`, which faust's and Quix Streams'
benches both run) sends exactly what luxflow's own pipeline sends, on the same input, for any
cut into batches and checkpoint intervals. Each run's requests are taken from the null
clients (every request a sink sends, encoded as it would go on the wire) and compared as a
multiset: the current-state puts of one flush go out on the conditional-put pool's threads,
so their order is not part of the work. That faust and Quix, carrying the same work, send
the same requests is checked in tests/frameworks/ (their own environment: see there).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.same_work import RECORDS, luxflow_requests, plain_loop_requests


def test_luxflow_sends_what_the_bench_input_makes_it_send() -> None:
    lux = luxflow_requests(RECORDS, 70, 300)
    # Current states (conditional puts), alarms and hourly usage to the command model, the
    # telemetry series to the query model: the comparisons below compare real work.
    assert set(lux.by_call) == {"PutItem", "WriteRecords"}
    assert set(lux.item_count) == {"current_state", "events", "usage"}
    assert lux.item_count["events"] > 0 and lux.item_count["usage"] > 0
    assert lux.calls == len(lux.sent)


def test_the_shared_work_sends_exactly_luxflows_requests() -> None:
    lux = luxflow_requests(RECORDS, 70, 300)
    same = plain_loop_requests(RECORDS, 70, 300)
    assert (same.calls, same.items) == (lux.calls, lux.items)
    assert same.digest() == lux.digest()
    # The same checkpoints too (a snapshot sends no request): at every interval's end and
    # wherever a closed window made one due.
    assert same.checkpoints == lux.checkpoints > len(RECORDS) // 300


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 130), checkpoint_every=st.integers(1, 400))
def test_any_cut_into_batches_and_intervals_sends_luxflows_requests(
    batch: int, checkpoint_every: int
) -> None:
    # Intervals that are not a multiple of the batch too: each one's last batch is short.
    records = RECORDS[:700]
    lux = luxflow_requests(records, batch, checkpoint_every)
    same = plain_loop_requests(records, batch, checkpoint_every)
    assert same.digest() == lux.digest()
    assert same.checkpoints == lux.checkpoints
