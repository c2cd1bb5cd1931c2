"""Metrics aggregation, EMF lines and readiness, without network."""

from __future__ import annotations

import json

from core.clock import ManualClock
from streams.observe.emf import emf_line
from streams.observe.metrics import FAILED, RELEASED, Metrics, ShardStatus, WorkerStatus

SHARD = "shardId-000000000001"


def shard(**fields: object) -> ShardStatus:
    return ShardStatus(**{"shard_id": SHARD, "generation": "g1", **fields})  # type: ignore[arg-type]


def test_counters_become_increases_and_a_new_engine_restarts_them() -> None:
    clock = ManualClock(1_000_000)
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=clock)
    metrics.update(WorkerStatus([shard(records_read=10, dead_letters={"decode": 2})]))
    metrics.update(WorkerStatus([shard(records_read=25, dead_letters={"decode": 3})]))
    first = {line.dims: line.values for line in metrics.take_flush()}
    assert first[(("Shard", SHARD),)]["RecordsRead"] == 25
    assert first[(("Shard", SHARD),)]["DeadLetters"] == 3
    assert first[(("Reason", "decode"), ("Shard", SHARD))] == {"DeadLetters": 3}
    # A rebuilt engine (new generation) counts from 0 again: its 4 are new records.
    metrics.update(WorkerStatus([shard(generation="g2", records_read=4)]))
    second = {line.dims: line.values for line in metrics.take_flush()}
    assert second[(("Shard", SHARD),)]["RecordsRead"] == 4
    assert second[(("Shard", SHARD),)]["DeadLetters"] == 0  # zeros keep alarms fed
    assert metrics.totals[("RecordsRead", (("Shard", SHARD),))] == 29


def test_checkpoint_age_grows_while_work_waits_and_is_zero_when_idle_and_caught_up() -> None:
    clock = ManualClock(1_000_000)
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=clock)
    metrics.update(WorkerStatus([shard(pending=True)]))
    clock.now_ms += 2_000
    metrics.update(WorkerStatus([shard(pending=True)]))
    assert metrics.readiness().ready
    clock.now_ms += 2_000
    metrics.update(WorkerStatus([shard(pending=True, phase=FAILED, error="sink")]))
    readiness = metrics.readiness()
    assert not readiness.ready
    assert readiness.checkpoint_age_ms == {SHARD: 4_000}
    # A checkpoint written a second ago: ready again.
    clock.now_ms += 1_000
    metrics.update(WorkerStatus([shard(pending=True, last_checkpoint_ms=clock.now_ms - 1_000)]))
    assert metrics.readiness().checkpoint_age_ms == {SHARD: 1_000}
    clock.now_ms += 10_000
    metrics.update(WorkerStatus([shard(pending=False, caught_up=True)]))
    assert metrics.readiness().checkpoint_age_ms == {SHARD: 0}
    # A shard given up no longer counts.
    metrics.update(WorkerStatus([shard(phase=RELEASED, pending=True)]))
    assert metrics.readiness().ready
    assert metrics.readiness().checkpoint_age_ms == {}


def test_an_emf_line_names_namespace_dimensions_units_and_values() -> None:
    metrics = Metrics(max_checkpoint_age_ms=3_000, now_ms=ManualClock(1_000_000))
    metrics.update(WorkerStatus([shard(records_read=7, millis_behind=250)], lease_losses=1))
    lines = metrics.take_flush()
    documents = [json.loads(emf_line("app-1", "w-1", line, 123)) for line in lines]
    by_dims = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in documents}
    shard_line = by_dims[("App", "Shard")]
    directive = shard_line["_aws"]["CloudWatchMetrics"][0]
    assert shard_line["_aws"]["Timestamp"] == 123
    assert directive["Namespace"] == "Luxflow"
    assert directive["Dimensions"] == [["App", "Shard"], ["App"]]
    assert {"Name": "MillisBehindLatest", "Unit": "Milliseconds"} in directive["Metrics"]
    assert (shard_line["App"], shard_line["Shard"], shard_line["RecordsRead"]) == (
        "app-1",
        SHARD,
        7,
    )
    assert shard_line["MillisBehindLatest"] == 250
    assert by_dims[("App",)]["LeaseLosses"] == 1
    assert by_dims[("App",)]["ShardsHeld"] == 1
