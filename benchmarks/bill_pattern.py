"""The bill of the pattern luxflow replaces, priced with the same table and the same
readings: IoT rule -> Kinesis -> Lambda -> DynamoDB (one write per reading), plus the same
rule's Timestream (LiveAnalytics) action, in one region, with no archive and no DR.

What the pattern does per reading is the design's own description; what it costs to run is
assumed as named below (Lambda batches and time per record, the Timestream record size).
Timestream LiveAnalytics has been closed to new AWS customers since 2025-06-20 and no IoT rule
action writes to Timestream for InfluxDB, so a new account could not deploy the pattern as
written; it is priced as the design describes it.
"""

from __future__ import annotations

from benchmarks import cost
from benchmarks.bill_lines import Line, iot_lines, kinesis_lines, timestream_lines
from benchmarks.prices import price as p
from benchmarks.stack import (
    GB,
    SECONDS_PER_MONTH,
    Measured,
    Stack,
    assets,
    kb_rounded,
    on_demand_shards,
    records_per_month,
    records_per_s,
)

PATTERN = Stack(
    "IoT rule -> Kinesis -> Lambda -> DynamoDB, + IoT rule -> Timestream",
    regions=1,
    retention_hours=24,
    rules_per_message=1,
    archive=False,
)
LAMBDA_LOG_BYTES_PER_INVOCATION = 350  # START, END and REPORT lines
STATE_ITEM_BYTES = 1024  # the current-state item the pattern overwrites, one per asset


def lambda_invocations(sites: int, m: Measured) -> float:
    """Invocations a month: the event source polls each shard once a second and hands a
    function at most `cost.LAMBDA_BATCH` records, so a quiet stream still costs an
    invocation per shard-second with records, a busy one a record batch each."""
    rps = records_per_s(sites, m)
    shards = on_demand_shards(sites, m, PATTERN)
    per_s = max(rps / cost.LAMBDA_BATCH, min(rps, float(shards)))
    return per_s * SECONDS_PER_MONTH


def lambda_compute(sites: int, m: Measured) -> float:
    """Requests and GB-seconds: `LAMBDA_MS_PER_RECORD` per reading (a synchronous PutItem)."""
    n = records_per_month(sites, m)
    gb_s = n * cost.LAMBDA_MS_PER_RECORD / 1000 * cost.LAMBDA_MEMORY_GB
    return lambda_invocations(sites, m) * p("lambda_request") + gb_s * p("lambda_gb_second")


def pattern_bill(sites: int, m: Measured) -> list[Line]:
    n = records_per_month(sites, m)
    invocations = lambda_invocations(sites, m)
    write_kb = kb_rounded(m.bytes_per_record)
    return [
        *iot_lines(sites, PATTERN, m, actions=2),
        *kinesis_lines(sites, PATTERN, m, consumers=1),
        Line(
            "Lambda",
            "function",
            lambda_compute(sites, m),
            "per reading",
            f"batches of up to {cost.LAMBDA_BATCH}, at least one invocation per busy "
            f"shard-second; {cost.LAMBDA_MS_PER_RECORD:g} ms per record (a synchronous "
            f"PutItem), {cost.LAMBDA_MEMORY_GB * 1024:.0f} MB",
        ),
        Line(
            "DynamoDB",
            "one write per reading",
            n * p("dynamodb_write_request_unit"),
            "per reading",
            "a 1 KB write unit per reading",
        ),
        Line(
            "DynamoDB",
            "storage",
            assets(sites) * STATE_ITEM_BYTES / GB * p("dynamodb_storage_gb_month"),
            "per asset",
            "one current-state item per asset",
        ),
        *timestream_lines(
            n * write_kb, stored_kb_per_month=n * m.bytes_per_record / 1024, label=" (rule action)"
        ),
        Line(
            "CloudWatch",
            "Lambda logs",
            invocations * LAMBDA_LOG_BYTES_PER_INVOCATION / GB * p("cloudwatch_logs_ingest_gb"),
            "per invocation",
            f"{LAMBDA_LOG_BYTES_PER_INVOCATION} B of START/END/REPORT per invocation",
        ),
    ]
