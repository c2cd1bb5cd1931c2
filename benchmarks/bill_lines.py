"""Bill lines both bills share: the data path in (IoT Core, Kinesis) and Timestream
LiveAnalytics, and the `Line` every bill is made of (`benchmarks.bill`, `benchmarks.bill_pattern`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

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
from domain.series import DEFAULT_INTERVAL_MS, interval_name, rollup_of
from domain.series_acc import SeriesAcc
from domain.telemetry import Reading
from domain.views import time_points
from lighting.settings import Settings
from sinks.influxdb import point_line
from sinks.timestream import to_record

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


# --- the telemetry series (domain.series) at the default interval --------------------------
SERIES_HOT_DAYS = Settings().series_hot_days
SERIES_COLD_DAYS = Settings().series_cold_days
INFLUX_BYTES_PER_FIELD = 3.0
"""Stored bytes per field value of a series point in InfluxDB's TSM files (assumed: floats
compressed with the Gorilla scheme, timestamps delta-encoded; not measured here)."""


def series_point_sizes(interval_ms: int = DEFAULT_INTERVAL_MS) -> tuple[float, float, int]:
    """(Timestream record bytes, line-protocol bytes, fields) of one series point, measured by
    encoding a rollup of realistic ids and values with the sinks' own encoders."""
    acc = SeriesAcc()
    for i in range(15):
        acc + Reading(
            "site-0001",
            "site-0001-b01",
            "site-0001-b01-r01",
            "site-0001-b01-r01-l01",
            1_796_590_800_000 + i * 4_000,
            57.31 + i * 0.1,
            229.87,
            0.2493,
            412.5,
            True,
            80,
        )
    point = time_points(rollup_of("site-0001-b01-r01-l01", 1_796_590_800_000, interval_ms, acc))[0]
    record = msgspec.json.encode(to_record(point))
    return float(len(record)), float(len(point_line(point))), len(point.measures)


def series_points_per_asset_month(interval_ms: int = DEFAULT_INTERVAL_MS) -> tuple[float, float]:
    """(fine points, hourly points) one asset writes in a month."""
    return MINUTES_PER_MONTH * 60_000 / interval_ms, HOURS_PER_MONTH


def series_timestream_lines(sites: int) -> tuple[list[Line], float]:
    """The series in LiveAnalytics (one record per point, metered in 1 KB units; the memory
    store holds `SERIES_HOT_DAYS`, the magnetic store the 12th month's share of
    `SERIES_COLD_DAYS`) and the write units it takes."""
    record_bytes, _, _ = series_point_sizes()
    fine, hourly = series_points_per_asset_month()
    points = assets(sites) * (fine + hourly)
    units = points * kb_rounded(record_bytes)
    kb_month = points * record_bytes / 1024
    memory_gb = kb_month * 1024 / GB * SERIES_HOT_DAYS / (HOURS_PER_MONTH / 24)
    months = min(HORIZON_MONTHS, SERIES_COLD_DAYS / (HOURS_PER_MONTH / 24))
    magnetic_gb = months * kb_month * 1024 / GB
    label = f"{interval_name(DEFAULT_INTERVAL_MS)} + 1h per asset"
    return [
        Line(
            "Query model",
            "series writes (LiveAnalytics)",
            units * p("timestream_write_1kb"),
            "per asset",
            f"{label}; one record of {record_bytes:.0f} B per point",
        ),
        Line(
            "Query model",
            f"series memory store {SERIES_HOT_DAYS} d",
            memory_gb * HOURS_PER_MONTH * p("timestream_memory_gb_hour"),
            "per asset",
            f"the hot tier: {SERIES_HOT_DAYS} days of points (record bytes, assumed = stored)",
        ),
        Line(
            "Query model",
            f"series magnetic store {SERIES_COLD_DAYS} d",
            magnetic_gb * p("timestream_magnetic_gb_month"),
            "per asset",
            f"{months:.1f} months of points held in month {HORIZON_MONTHS}",
        ),
    ], units


def series_influx_line(sites: int, regions: int, allocated_gb: float) -> Line:
    """The series in InfluxDB: no charge of its own (the instance and its allocated storage
    are billed already), but the storage it takes, to check against the allocation."""
    _, line_bytes, fields = series_point_sizes()
    fine, hourly = series_points_per_asset_month()
    point_bytes = fields * INFLUX_BYTES_PER_FIELD
    held_days_fine = SERIES_HOT_DAYS
    held_months_hourly = min(HORIZON_MONTHS, SERIES_COLD_DAYS / (HOURS_PER_MONTH / 24))
    gb = (
        assets(sites)
        * point_bytes
        * (fine * held_days_fine / (HOURS_PER_MONTH / 24) + hourly * held_months_hourly)
        / GB
    )
    fits = "fits in" if gb <= allocated_gb else "EXCEEDS"
    return Line(
        "Query model",
        "series storage (InfluxDB)",
        0.0,
        "per asset",
        f"{gb:.2f} GB per region (fine {SERIES_HOT_DAYS} d, hourly {held_months_hourly:.1f} "
        f"months; {fields} fields x {INFLUX_BYTES_PER_FIELD:g} B assumed per point, "
        f"{line_bytes:.0f} B on the wire): {fits} the {allocated_gb:g} GB allocated",
    )
