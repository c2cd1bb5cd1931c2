"""The AWS bill per site: request units per 1,000 records, and dollars per site-month.

A cost run replays sites at the design's rate (100 MB per site per day: with ~245-byte
readings from 20 assets, one reading per asset about every 4 s) through one shard's engine
with the production sinks over the null clients (`benchmarks.harness`), in real event-time
order: the engine's clock follows the records, so it flushes and checkpoints every 5 s of
stream time as in production, and the current-state coalescing, snapshot deltas and window
closes happen at their real rate. What is counted:

- DynamoDB write request units (1 KB each, rounded up per item) of the command model, by kind
  (current state, events, usage), of the state snapshots (head + chunk per save, from the
  snapshot bytes), of leases and checkpoints (per shard-hour, shared by the sites of a shard)
  and of dead letters;
- Timestream 1 KB write units (request bytes rounded up per WriteRecords; the query model);
- Kinesis GetRecords calls and GB read.

Then dollars per site-month with `benchmarks.prices`, next to the design document's pattern
(IoT rule -> Kinesis -> Lambda -> one DynamoDB write per reading) costed with the same table.
Assumptions are constants below; the report repeats them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import prices, workload
from benchmarks.harness import RequestCounters, build_engine
from core.clock import DAY_MS, MINUTE_MS, ManualClock
from core.records import TRIM_HORIZON, Record
from domain.telemetry import decode_reading
from lighting.settings import Settings
from streams.app import App
from tables.store import InMemoryStateStore

SITE_BYTES_PER_DAY = 100_000_000
DAYS_PER_MONTH = 30.44
SHARD_RECORDS_PER_S = 1_000  # a Kinesis shard's write limit
SHARD_FILL = 0.5  # shards run at half their limit: headroom for bursts
LEASE_RENEWALS_PER_SHARD_HOUR = 3_600 / 3  # a renewal every 3 s (and a write per checkpoint)
POLLS_PER_SHARD_S = 1.0  # GetRecords once a second per shard
FARGATE_GB_PER_VCPU = 2.0
CPU_UTILISATION = 0.5  # vCPU paid for per vCPU used
LAMBDA_BATCH = 100  # the Kinesis event source's default batch size
LAMBDA_MS_PER_RECORD = 5.0  # one synchronous PutItem per reading, ~5 ms round trip
LAMBDA_MEMORY_GB = 0.125


@dataclass(frozen=True)
class CostRun:
    records: int
    sites: int
    interval_ms: int
    bytes_per_record: float
    cpu_us_per_record: float
    checkpoint_interval_ms: int
    units_per_1000: dict[str, float]
    item_bytes: dict[str, float] = field(default_factory=dict)
    """Mean bytes of a command-model item, by kind."""
    snapshot_kb_per_1000: float = 0.0
    """Snapshot chunk bytes (KB) per 1,000 records."""
    snapshot_saves_per_shard_hour: float = 0.0
    """Snapshot saves (a head write each) of the one busy shard, per hour of event time."""
    state_bytes_per_site: float = 0.0
    """Bytes of the shard's stored state chain at the end (base + deltas), per site."""


def site_interval_ms(bytes_per_record: float) -> int:
    """Reading interval per asset that makes one site send SITE_BYTES_PER_DAY."""
    return max(
        1_000, round(workload.ASSETS_PER_SITE * bytes_per_record * DAY_MS / SITE_BYTES_PER_DAY)
    )


def site_records_per_s(bytes_per_record: float) -> float:
    return SITE_BYTES_PER_DAY / bytes_per_record / 86_400


def sites_per_shard(bytes_per_record: float) -> float:
    return SHARD_RECORDS_PER_S * SHARD_FILL / site_records_per_s(bytes_per_record)


def run(
    build_app: Callable[[], App],
    *,
    sites: int,
    minutes: int,
    checkpoint_interval_ms: int = Settings().checkpoint_interval_ms,
) -> CostRun:
    """Replay `sites` sites at 100 MB/day each for `minutes` of event time, one shard, with
    the given checkpoint interval (the sinks flush, coalescing current state, at each)."""
    probe = workload.generate(workload.fleet(1, 2 * MINUTE_MS, episodes=False))
    interval_ms = site_interval_ms(probe.payload_bytes / len(probe.records))
    params = workload.fleet(sites, minutes * MINUTE_MS)
    load = workload.generate(msgspec_replace(params, interval_ms=interval_ms))
    records = load.records
    times = [decode_reading(r.data, r.arrival_ms).ts_ms for r in records]
    counters = RequestCounters()
    store = InMemoryStateStore()
    clock = ManualClock(times[0])
    settings = Settings(checkpoint_interval_ms=checkpoint_interval_ms)
    engine = build_engine(
        build_app(), records[0].shard_id, counters, clock, settings=settings, state_store=store
    )
    engine.initialize(TRIM_HORIZON)
    cpu0 = time.process_time()
    for batch, last_ms in _per_second(records, times):
        clock.now_ms = last_ms
        engine.process_records(batch)
        if engine.checkpoint.due():
            engine.checkpoint.commit()
    engine.checkpoint.commit()
    cpu_s = time.process_time() - cpu0
    n = len(records)
    bytes_per_record = load.payload_bytes / n
    shard_share = sites / sites_per_shard(bytes_per_record)
    per_1000 = 1000 / n
    units = {f"dynamodb_{k}": v * per_1000 for k, v in sorted(counters.write_units.items())}
    # Chunks: the snapshot bytes in 1 KB units (a full shard's deltas are sites_per_shard
    # times larger, so rounding per chunk is negligible); the head write of each save is
    # shared by the sites of a full shard.
    units["dynamodb_snapshots"] = (
        store.bytes_written / 1024 + store.saves * shard_share
    ) * per_1000
    records_per_shard_hour = (
        sites_per_shard(bytes_per_record) * site_records_per_s(bytes_per_record) * 3_600
    )
    lease_writes = 3_600_000 / checkpoint_interval_ms + LEASE_RENEWALS_PER_SHARD_HOUR
    units["dynamodb_leases"] = lease_writes / records_per_shard_hour * 1000
    dead = engine.counters.bad_records + engine.counters.late_records
    units["dynamodb_dead_letters"] = dead * per_1000
    units["timestream_writes"] = counters.timestream_units * per_1000
    units["kinesis_get_records"] = POLLS_PER_SHARD_S * 3_600 / records_per_shard_hour * 1000
    units["kinesis_gb_read"] = bytes_per_record * 1000 / 1e9
    chain = store.chains.get(records[0].shard_id, [])
    return CostRun(
        n,
        sites,
        interval_ms,
        bytes_per_record,
        cpu_s / n * 1e6,
        checkpoint_interval_ms,
        units,
        item_bytes={
            f"dynamodb_{k}": v / counters.item_count[k] for k, v in counters.item_bytes.items()
        },
        snapshot_kb_per_1000=store.bytes_written / 1024 * per_1000,
        snapshot_saves_per_shard_hour=store.saves / (minutes / 60),
        state_bytes_per_site=sum(len(s.data) for s in chain) / sites,
    )


def msgspec_replace(params: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(params, **changes)


def _per_second(records: list[Record], times: list[int]) -> list[tuple[list[Record], int]]:
    """The records as one batch per second of event time (a poll a second)."""
    out: list[tuple[list[Record], int]] = []
    batch: list[Record] = []
    second = times[0] // 1000 if times else 0
    for record, ts in zip(records, times, strict=True):
        if ts // 1000 != second and batch:
            out.append((batch, max(second * 1000 + 999, ts - 1)))
            batch, second = [], ts // 1000
        batch.append(record)
    if batch:
        out.append((batch, second * 1000 + 999))
    return out


def dollars(run_: CostRun, pipeline_us_per_record: float | None) -> dict[str, Any]:
    """Dollars per site-month of luxflow and of the design's Lambda pattern."""
    p = prices.price
    records_month = SITE_BYTES_PER_DAY / run_.bytes_per_record * DAYS_PER_MONTH
    thousands = records_month / 1000
    u = run_.units_per_1000
    dynamodb_units = sum(v for k, v in u.items() if k.startswith("dynamodb_")) * thousands
    us = pipeline_us_per_record or run_.cpu_us_per_record
    vcpu_hours = records_month * us / 1e6 / 3_600 / CPU_UTILISATION
    compute = vcpu_hours * (p("fargate_vcpu_hour") + FARGATE_GB_PER_VCPU * p("fargate_gb_hour"))
    dynamodb = dynamodb_units * p("dynamodb_write_request_unit")
    kinesis_read = u["kinesis_gb_read"] * thousands * p("kinesis_on_demand_retrieve_gb")
    timestream = u["timestream_writes"] * thousands * p("timestream_write_1kb")
    # The design's pattern: one 1-KB DynamoDB write per reading, Lambda per batch of readings.
    base_dynamodb = records_month * p("dynamodb_write_request_unit")
    invocations = records_month / LAMBDA_BATCH
    gb_s = invocations * LAMBDA_BATCH * LAMBDA_MS_PER_RECORD / 1000 * LAMBDA_MEMORY_GB
    base_compute = invocations * p("lambda_request") + gb_s * p("lambda_gb_second")
    luxflow_total = dynamodb + compute
    baseline_total = base_dynamodb + base_compute
    return {
        "usd_per_site_month": round(luxflow_total, 4),
        "baseline_usd_per_site_month": round(baseline_total, 4),
        "ratio_to_baseline": round(luxflow_total / baseline_total, 4),
        "luxflow": {"dynamodb": round(dynamodb, 4), "compute_fargate": round(compute, 4)},
        "baseline": {"dynamodb": round(base_dynamodb, 4), "compute_lambda": round(base_compute, 4)},
        "not_compared_same_on_both_sides": {"kinesis_read": round(kinesis_read, 4)},
        "query_model_timestream": round(timestream, 4),
        "records_per_site_month": round(records_month),
        "request_units_per_1000_records": {k: round(v, 3) for k, v in u.items()},
        "run": {
            "records": run_.records,
            "sites": run_.sites,
            "reading_interval_ms": run_.interval_ms,
            "bytes_per_record": round(run_.bytes_per_record, 1),
            "cpu_us_per_record_at_production_rate": round(run_.cpu_us_per_record, 2),
            "cpu_us_per_record_costed": round(us, 2),
            "checkpoint_interval_ms": run_.checkpoint_interval_ms,
        },
        "assumptions": {
            "site_bytes_per_day": SITE_BYTES_PER_DAY,
            "sites_per_shard": round(sites_per_shard(run_.bytes_per_record), 1),
            "lease_renewals_per_shard_hour": LEASE_RENEWALS_PER_SHARD_HOUR,
            "cpu_utilisation": CPU_UTILISATION,
            "fargate_gb_per_vcpu": FARGATE_GB_PER_VCPU,
            "lambda_batch": LAMBDA_BATCH,
            "lambda_ms_per_record": LAMBDA_MS_PER_RECORD,
            "lambda_memory_gb": LAMBDA_MEMORY_GB,
        },
        "prices": {
            "region": prices.REGION,
            "as_of": prices.AS_OF,
            "checked_online": prices.CHECKED_ONLINE,
            "sources": list(prices.SOURCES),
            "table": {k: {"usd": v, "unit": unit} for k, (v, unit) in prices.PRICES.items()},
        },
    }
