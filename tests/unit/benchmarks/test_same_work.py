"""faust's and Quix Streams' benches do luxflow's work: the same sink requests on the same input.

That is what makes `faust_same_work_ratio` and `quix_same_work_ratio` a comparison of
frameworks. Each run's requests are taken from the null clients (every request a sink sends,
encoded as it would go on the wire) and compared as a multiset: the current-state puts of one
flush go out on the conditional-put pool's threads, so their order is not part of the work.

faust-streaming and quixstreams are in the `bench` extra (`./dev bench` installs it), not in
the test environment: without them these tests check that the bench says why instead of
raising. The shared per-record work (`benchmarks.same_work`) is checked against luxflow's
own pipeline everywhere, with a plain loop carrying the records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import faust_bench, harness, quix_bench, workload
from benchmarks.harness import RequestCounters
from benchmarks.same_work import SameWork
from core.records import Record
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.app import App

_encode = msgspec.json.Encoder().encode


def lighting_app() -> App:
    """The real lighting app, with an empty registry (every asset gets the default limits)."""
    return build_app(empty_registry(), topic="telemetry", grace_ms=600_000)


class RecordedRequests(RequestCounters):
    """The counters of the null clients, also keeping every request's content."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.checkpoints = 0

    def count(self, call: str, items: int, request: dict[str, Any]) -> int:
        self.sent.append(call.encode() + b" " + _encode(request))
        return super().count(call, items, request)

    def digest(self) -> str:
        return hashlib.sha256(b"\n".join(sorted(self.sent))).hexdigest()


def _fleet(sites: int, minutes: int) -> list[Record]:
    # Episodes on: faults and demand spikes, so alarms, spike confirmation (the agent reads
    # its stream's current event) and prompt flushes are part of the work.
    return workload.generate(workload.fleet(sites, minutes * 60_000, episodes=True)).records


RECORDS = _fleet(2, 90)  # 3,600 readings: hourly windows close, roll-ups and spikes run


def luxflow_requests(
    records: Sequence[Record], batch: int, checkpoint_every: int
) -> RecordedRequests:
    """What luxflow's own pipeline (one `ShardEngine`, as `luxflow bench` runs it) sends;
    its `checkpoints` are the state snapshots the engine took."""
    recorded = RecordedRequests()
    one_shard = harness.plan(
        records, lambda _r: 0, 1, batch=batch, checkpoint_every=checkpoint_every
    )
    result = harness.run_pipeline(lighting_app, 1, one_shard, counters=recorded)
    assert result.records == len(records) and result.bad_records == 0
    recorded.checkpoints = result.checkpoints
    return recorded


def plain_loop_requests(
    records: Sequence[Record], batch: int, checkpoint_every: int
) -> RecordedRequests:
    """`SameWork` with a plain loop carrying the records to the agent."""
    recorded = RecordedRequests()
    work = SameWork(lighting_app, records, recorded, batch=batch, checkpoint_every=checkpoint_every)
    detect = work.app.agents[0].instance()
    for index in range(len(records)):
        outputs: list[object] = []
        detect.feed(work.begin(index), outputs, work.event)
        work.done(index, outputs)
    recorded.checkpoints = work.engine.counters.checkpoints
    return recorded


def _framework_requests(
    run: Callable[..., Any], name: str, batch: int, checkpoint_every: int
) -> RecordedRequests | None:
    """A framework's run on RECORDS: its requests, or None when the framework is not
    installed (then the result must say so)."""
    recorded = RecordedRequests()
    result = run(
        lighting_app, RECORDS, batch=batch, checkpoint_every=checkpoint_every, counters=recorded
    )
    if result.error is not None and "not importable" in result.error:
        assert name in result.error and result.events_per_cpu_s is None
        return None
    assert result.error is None
    assert result.events == len(RECORDS)
    assert result.events_per_cpu_s is not None and result.events_per_cpu_s > 0
    return recorded


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


def test_quix_streams_sends_exactly_luxflows_requests_or_says_why() -> None:
    quix = _framework_requests(quix_bench.run_same_work, "quixstreams", 70, 300)
    if quix is not None:
        lux = luxflow_requests(RECORDS, 70, 300)
        assert (quix.calls, quix.items) == (lux.calls, lux.items)
        assert quix.digest() == lux.digest()


def test_faust_sends_exactly_luxflows_requests_or_says_why() -> None:
    faust = _framework_requests(faust_bench.run_same_work, "faust", 70, 300)
    if faust is not None:
        lux = luxflow_requests(RECORDS, 70, 300)
        assert (faust.calls, faust.items) == (lux.calls, lux.items)
        assert faust.digest() == lux.digest()


def test_the_no_op_quix_pipeline_sees_every_record_or_says_why() -> None:
    result = quix_bench.noop_us_per_event(RECORDS[:500])
    if result.error is None:
        assert result.events == 500
        assert result.us_per_event is not None and result.us_per_event > 0
    else:
        assert "quixstreams not importable" in result.error
        assert result.us_per_event is None
