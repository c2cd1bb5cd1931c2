"""faust's and Quix Streams' benches do luxflow's work: the same sink requests on the same
input as luxflow's own pipeline. That is what makes `faust_same_work_ratio` and
`quix_same_work_ratio` a comparison of frameworks.

faust-streaming and quixstreams are the `bench` extra, not in the test environment (quixstreams
pins pydantic below the version the read API is locked to): `./dev test` runs this folder in
a venv of its own with that extra (`.venv-bench`), and the main run leaves it out. Here a
framework that is not importable fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import faust_bench, quix_bench
from tests.support.same_work import RECORDS, RecordedRequests, lighting_app, luxflow_requests


def framework_requests(
    run: Callable[..., Any], batch: int, checkpoint_every: int
) -> RecordedRequests:
    recorded = RecordedRequests()
    result = run(
        lighting_app, RECORDS, batch=batch, checkpoint_every=checkpoint_every, counters=recorded
    )
    assert result.error is None
    assert result.events == len(RECORDS)
    assert result.events_per_cpu_s is not None and result.events_per_cpu_s > 0
    return recorded


def test_quix_streams_sends_exactly_luxflows_requests() -> None:
    quix = framework_requests(quix_bench.run_same_work, 70, 300)
    lux = luxflow_requests(RECORDS, 70, 300)
    assert (quix.calls, quix.items) == (lux.calls, lux.items)
    assert quix.digest() == lux.digest()


def test_faust_sends_exactly_luxflows_requests() -> None:
    faust = framework_requests(faust_bench.run_same_work, 70, 300)
    lux = luxflow_requests(RECORDS, 70, 300)
    assert (faust.calls, faust.items) == (lux.calls, lux.items)
    assert faust.digest() == lux.digest()


def test_the_no_op_quix_pipeline_sees_every_record() -> None:
    result = quix_bench.noop_us_per_event(RECORDS[:500])
    assert result.error is None
    assert result.events == 500
    assert result.us_per_event is not None and result.us_per_event > 0
