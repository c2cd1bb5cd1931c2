"""The whole monthly bill of a luxflow deployment at a number of sites: one `Line` per thing
AWS charges for, each with how it scales and the assumption it rests on.

Quantities come from three places: what the code does (`stack.Measured`: request units of
the real engine, its metric lines, its registry items, the archive's compression), what the
CDK app deploys (`stack.Stack`) and the constants here and in `benchmarks.bill_storage`
(assumptions, named as such in each line). Prices: `benchmarks.prices`. The lines shared
with the IoT rule -> Kinesis -> Lambda pattern are in `benchmarks.bill_lines`, its bill in
`benchmarks.bill_pattern`.
"""

from __future__ import annotations

from benchmarks import cost
from benchmarks.bill_lines import (
    Line,
    iot_lines,
    kinesis_lines,
    series_influx_line,
    series_timestream_lines,
    timestream_lines,
)
from benchmarks.bill_storage import archive_lines, dynamodb_lines
from benchmarks.prices import price as p
from benchmarks.stack import (
    DAEMON_MB,
    GB,
    HOURS_PER_MONTH,
    PROCESSOR_MB,
    SECONDS_PER_MONTH,
    Measured,
    Stack,
    records_per_month,
    records_per_s,
    region_shards,
    worker_tasks,
)

WIRE_OVERHEAD = 1.4  # bytes through the Kinesis endpoint per payload byte (GetRecords framing)
KINESIS_CONSUMERS = 2  # the workers and the archive's Firehose each read the stream once
ALB_LCU = 0.1  # operators' reads: a tenth of a load balancer capacity unit on average
APP_LOG_MB_PER_TASK_DAY = 5.0
LOG_STORED_FRACTION = 0.15  # CloudWatch Logs bills storage on compressed bytes
FLOW_LOG_MB_PER_REGION_DAY = 1.0  # rejected traffic only
KMS_REQUESTS_PER_REGION_MONTH = 100_000
ECR_IMAGE_GB = 0.6

__all__ = ["Line", "luxflow_bill"]


def compute_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    rps = records_per_s(sites, m)
    shards = region_shards(sites, stack, m)
    tasks = [worker_tasks(s, rps if i == 0 else 0.0, stack, m) for i, s in enumerate(shards)]
    task_hour = stack.worker_vcpu * p("fargate_vcpu_hour") + stack.worker_gb * p("fargate_gb_hour")
    api_hour = stack.api_vcpu * p("fargate_vcpu_hour") + stack.api_gb * p("fargate_gb_hour")
    lines = [
        Line(
            "Fargate",
            "worker tasks",
            sum(tasks) * HOURS_PER_MONTH * task_hour,
            "per task",
            f"{'+'.join(map(str, tasks))} tasks of {stack.worker_vcpu:g} vCPU / "
            f"{stack.worker_gb:g} GB: at least {stack.min_workers} per region, CPU at "
            f"{m.cpu_us_per_record:.1f} us/record and {cost.CPU_UTILISATION:.0%} use, "
            f"{DAEMON_MB:.0f} MB + {m.kcl_processor_mb or PROCESSOR_MB:.0f} MB per shard",
        ),
    ]
    if stack.api_tasks:
        lines.append(
            Line(
                "Fargate",
                "read API tasks",
                stack.regions * stack.api_tasks * HOURS_PER_MONTH * api_hour,
                "per region",
                f"{stack.api_tasks} tasks of {stack.api_vcpu:g} vCPU / "
                f"{stack.api_gb:g} GB per region",
            )
        )
    if stack.load_balancer:
        alb = (
            stack.regions
            * HOURS_PER_MONTH
            * (p("alb_hour") + ALB_LCU * p("alb_lcu_hour") + stack.azs * p("public_ipv4_hour"))
        )
        lines.append(
            Line(
                "Fargate",
                "API load balancer",
                alb,
                "per region",
                f"one ALB per region, {ALB_LCU} LCU on average, a public IPv4 address per zone",
            )
        )
    return lines


def network_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    read_gb = records_per_month(sites, m) * m.bytes_per_record * WIRE_OVERHEAD / GB
    if stack.nat_gateways:
        return [
            Line(
                "Network",
                f"NAT gateway x{stack.nat_gateways}",
                stack.regions * stack.nat_gateways * HOURS_PER_MONTH * p("nat_gateway_hour"),
                "per region",
                "the workers' egress (DynamoDB through its free gateway endpoint)",
            ),
            Line(
                "Network",
                "NAT data processed",
                read_gb * p("nat_gateway_gb"),
                "per reading",
                f"the workers' Kinesis reads, x{WIRE_OVERHEAD} on the wire",
            ),
        ]
    endpoints = stack.regions * stack.interface_endpoints * stack.azs
    return [
        Line(
            "Network",
            f"interface endpoints ({stack.interface_endpoints} x {stack.azs} AZ)",
            endpoints * HOURS_PER_MONTH * p("interface_endpoint_az_hour"),
            "per region",
            "Kinesis, ECR api + dkr, Logs, Secrets Manager; DynamoDB and S3 gateways free",
        ),
        Line(
            "Network",
            "endpoint data processed",
            read_gb * p("interface_endpoint_gb"),
            "per reading",
            f"the workers' Kinesis reads, x{WIRE_OVERHEAD} on the wire",
        ),
    ]


def query_model_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    """The query model, with the telemetry series at the default interval on lines of their
    own. The cost run's measured LiveAnalytics units count the series points it closed too:
    the events-and-usage lines take the measured units less the series' (never below 0)."""
    units = m.units_per_1000.get("timestream_writes", 0.0) * records_per_month(sites, m) / 1000
    if stack.query_model == "influxdb":
        return [
            Line(
                "Query model",
                "InfluxDB instance (db.influx.medium)",
                stack.regions * HOURS_PER_MONTH * p("influxdb_medium_hour"),
                "per region",
                f"one single-AZ instance per region; the query model gets "
                f"{units / SECONDS_PER_MONTH:.1f} KB/s here, far below its capacity",
            ),
            Line(
                "Query model",
                f"InfluxDB storage {stack.influx_storage_gb:g} GB",
                stack.regions * stack.influx_storage_gb * p("influxdb_storage_gb_month"),
                "per region",
                "allocated storage (query-store.ts)",
            ),
            series_influx_line(sites, stack.regions, stack.influx_storage_gb),
        ]
    series, series_units = series_timestream_lines(sites)
    rest = max(0.0, units - series_units)
    return [*timestream_lines(rest, stored_kb_per_month=rest), *series]


def cloudwatch_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    shards = region_shards(sites, stack, m)
    rps = records_per_s(sites, m)
    tasks = [worker_tasks(s, rps if i == 0 else 0.0, stack, m) for i, s in enumerate(shards)]
    metrics = sum(shards) * m.metrics_per_shard + stack.regions * m.metrics_shared
    flushes = SECONDS_PER_MONTH * 1000 / m.metrics_flush_interval_ms
    emf_gb = (
        flushes
        * (sum(shards) * m.emf_bytes_per_shard_flush + sum(tasks) * m.emf_bytes_shared_flush)
        / GB
    )
    all_tasks = sum(tasks) + stack.regions * stack.api_tasks
    log_gb = (all_tasks * APP_LOG_MB_PER_TASK_DAY + stack.regions * FLOW_LOG_MB_PER_REGION_DAY) * (
        2**20 * HOURS_PER_MONTH / 24 / GB
    )
    logs = p("cloudwatch_logs_ingest_gb") + LOG_STORED_FRACTION * p(
        "cloudwatch_logs_storage_gb_month"
    )
    return [
        Line(
            "CloudWatch",
            "luxflow metrics (EMF)",
            metrics * p("cloudwatch_metric_month"),
            "per shard",
            f"{m.metrics_per_shard} metrics per shard + {m.metrics_shared} per "
            "region, counted from the runtime's own EMF lines",
        ),
        Line(
            "CloudWatch",
            "EMF log events",
            emf_gb * logs,
            "per shard",
            f"measured bytes per flush, a flush every {m.metrics_flush_interval_ms / 1000:g} s",
        ),
        Line(
            "CloudWatch",
            "Container Insights",
            stack.regions * stack.container_insights_metrics * p("cloudwatch_metric_month"),
            "per region",
            f"about {stack.container_insights_metrics} metrics per cluster (assumed)",
        ),
        Line(
            "CloudWatch",
            "application and flow logs",
            log_gb * logs,
            "per task",
            f"{APP_LOG_MB_PER_TASK_DAY:g} MB per task-day, {FLOW_LOG_MB_PER_REGION_DAY:g} MB of "
            "rejected flows per region-day (assumed)",
        ),
        Line(
            "CloudWatch",
            "alarms and dashboard",
            stack.regions
            * (
                stack.alarm_metrics * p("cloudwatch_alarm_metric_month")
                + p("cloudwatch_dashboard_month")
            ),
            "per region",
            f"{stack.alarm_metrics} alarm metrics and a dashboard per region",
        ),
    ]


def fixed_lines(stack: Stack) -> list[Line]:
    r = stack.regions
    kms = stack.kms_keys * (p("kms_key_month") + KMS_REQUESTS_PER_REGION_MONTH * p("kms_request"))
    return [
        Line(
            "Other",
            "KMS, Secrets Manager, Route 53, ECR",
            r
            * (
                kms
                + stack.secrets * p("secret_month")
                + stack.health_checks * p("route53_health_check_month")
                + ECR_IMAGE_GB * p("ecr_gb_month")
            )
            + (p("route53_zone_month") if stack.health_checks else 0.0),
            "per region + one zone",
            f"{stack.kms_keys} key ({KMS_REQUESTS_PER_REGION_MONTH:,} requests), "
            f"{stack.secrets} secrets, {stack.health_checks} health check per region, one "
            f"zone, a {ECR_IMAGE_GB} GB image",
        ),
    ]


def luxflow_bill(sites: int, stack: Stack, m: Measured) -> list[Line]:
    """Every line of a luxflow deployment's month at `sites` sites."""
    consumers = KINESIS_CONSUMERS if stack.archive else 1
    return [
        *iot_lines(sites, stack, m),
        *kinesis_lines(sites, stack, m, consumers),
        *compute_lines(sites, stack, m),
        *network_lines(sites, stack, m),
        *dynamodb_lines(sites, stack, m),
        *query_model_lines(sites, stack, m),
        *cloudwatch_lines(sites, stack, m),
        *archive_lines(sites, stack, m),
        *fixed_lines(stack),
    ]
