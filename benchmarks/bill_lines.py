"""Bill lines both bills share: the data path in (IoT Core, Kinesis) and Timestream
LiveAnalytics, and the `Line` every bill is made of (`benchmarks.bill`, `benchmarks.bill_pattern`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.prices import price as p
from benchmarks.stack import (
    GB,
    HORIZON_MONTHS,
    HOURS_PER_MONTH,
    MINUTES_PER_MONTH,
    Measured,
    Stack,
    assets,
    kb_rounded,
    provisioned_shards,
    records_per_month,
)

TOPIC_BYTES = 40  # luxflow/telemetry/<site>/<asset>, metered with the payload


@dataclass(frozen=True)
class Line:
    group: str
    item: str
    usd_month: float
    scales: str
    """How it grows: "per reading", "per GB", "per shard", "per task", "per region"..."""
    assumption: str


def iot_lines(sites: int, stack: Stack, m: Measured, actions: int = 1) -> list[Line]:
    n = records_per_month(sites, m)
    units = math.ceil((m.bytes_per_record + TOPIC_BYTES) / 5120)
    return [
        Line(
            "IoT Core",
            "messages",
            n * units * p("iot_message"),
            "per reading",
            f"one MQTT message per reading, {m.bytes_per_record:.0f} B + topic: {units} x 5 KB",
        ),
        Line(
            "IoT Core",
            "connectivity",
            assets(sites) * MINUTES_PER_MONTH * p("iot_connection_minute"),
            "per asset",
            "every asset is its own thing, connected all month",
        ),
        Line(
            "IoT Core",
            "rules triggered",
            n * stack.rules_per_message * p("iot_rule_triggered"),
            "per reading",
            f"{stack.rules_per_message} rule(s) on the topic filter, each "
            "charged per message whether its WHERE holds or not (assumed)",
        ),
        Line(
            "IoT Core",
            "rule actions",
            n * actions * p("iot_rule_action"),
            "per reading",
            f"{actions} action(s) per reading (Kinesis PutRecord"
            + (", Timestream" if actions > 1 else "")
            + ")",
        ),
    ]


def kinesis_lines(sites: int, stack: Stack, m: Measured, consumers: int) -> list[Line]:
    n = records_per_month(sites, m)
    kb = kb_rounded(m.bytes_per_record)
    gb_in = n * kb * 1024 / GB
    lines = [
        Line(
            "Kinesis",
            "on-demand stream-hours",
            stack.regions * HOURS_PER_MONTH * p("kinesis_on_demand_stream_hour"),
            "per region",
            "one stream per region",
        ),
        Line(
            "Kinesis",
            "data in",
            gb_in * p("kinesis_on_demand_ingest_gb"),
            "per reading",
            f"each record rounded up to {kb:.0f} KB",
        ),
        Line(
            "Kinesis",
            "data out",
            consumers * gb_in * p("kinesis_on_demand_retrieve_gb"),
            "per reading",
            f"{consumers} consumer(s), records rounded as for data in (assumed)",
        ),
    ]
    extra_hours = max(0, stack.retention_hours - 24)
    if extra_hours:
        held_gb = gb_in / (HOURS_PER_MONTH) * extra_hours
        lines.append(
            Line(
                "Kinesis",
                f"retention {stack.retention_hours} h",
                held_gb * p("kinesis_on_demand_retention_gb_month"),
                "per reading",
                f"{extra_hours} h of data held beyond the included 24 h",
            )
        )
    return lines


def provisioned_kinesis(sites: int, stack: Stack, m: Measured) -> float:
    """The stream's monthly cost if it were provisioned (`-c shards=N`), for comparison."""
    shards = provisioned_shards(sites, m)
    all_shards = shards + (stack.regions - 1)
    extra = stack.retention_hours > 24
    return (
        all_shards * HOURS_PER_MONTH * p("kinesis_shard_hour")
        + records_per_month(sites, m) * p("kinesis_put_payload_unit")
        + (all_shards * HOURS_PER_MONTH * p("kinesis_retention_shard_hour") if extra else 0.0)
    )


def timestream_lines(units: float, *, stored_kb_per_month: float, label: str = "") -> list[Line]:
    """LiveAnalytics: writes in 1 KB units, 24 h in the memory store, then magnetic."""
    memory_gb = stored_kb_per_month * 1024 / GB / (HOURS_PER_MONTH / 24)
    magnetic_gb = HORIZON_MONTHS * stored_kb_per_month * 1024 / GB
    return [
        Line(
            "Query model",
            f"LiveAnalytics writes{label}",
            units * p("timestream_write_1kb"),
            "per reading",
            "1 KB write units",
        ),
        Line(
            "Query model",
            f"LiveAnalytics memory store{label}",
            memory_gb * HOURS_PER_MONTH * p("timestream_memory_gb_hour"),
            "per reading",
            "24 h of writes held",
        ),
        Line(
            "Query model",
            f"LiveAnalytics magnetic store{label}",
            magnetic_gb * p("timestream_magnetic_gb_month"),
            "per GB",
            f"{HORIZON_MONTHS} months of writes",
        ),
    ]
