"""What luxflow's own pipeline and the benches' shared per-record work send, request by
request: the reference the framework comparisons (`faust_same_work_ratio`,
`quix_same_work_ratio`) are checked against."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from benchmarks import harness, workload
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
