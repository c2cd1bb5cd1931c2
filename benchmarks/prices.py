"""AWS list prices used by the cost model (`benchmarks.cost`, `benchmarks.bill`): one dated
table, us-east-1, USD; "M" is a million.

AS OF 2024-11 (after DynamoDB's on-demand and global-table price cuts of 2024-11-01), written
from memory of the public pricing pages named in `SOURCES`: the benchmark machine has no
internet access, so NO price number here was fetched, and every one MUST be checked against
the pages before the figures are quoted. `UNCERTAIN` names the ones remembered least surely.

What could be checked, against stored copies of the pricing pages (not the live pages), are
some metering RULES, listed in `METERING_CHECKED`: how a unit is counted, which decides the
quantities the bill multiplies by these prices.
"""

from __future__ import annotations

from typing import Final

REGION: Final = "us-east-1"
AS_OF: Final = "2024-11"
CHECKED_ONLINE: Final = False

SOURCES: Final = (
    "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "https://aws.amazon.com/kinesis/data-streams/pricing/",
    "https://aws.amazon.com/firehose/pricing/",
    "https://aws.amazon.com/lambda/pricing/",
    "https://aws.amazon.com/fargate/pricing/",
    "https://aws.amazon.com/timestream/pricing/",
    "https://aws.amazon.com/iot-core/pricing/",
    "https://aws.amazon.com/cloudwatch/pricing/",
    "https://aws.amazon.com/privatelink/pricing/",
    "https://aws.amazon.com/vpc/pricing/",
    "https://aws.amazon.com/elasticloadbalancing/pricing/",
    "https://aws.amazon.com/s3/pricing/",
    "https://aws.amazon.com/kms/pricing/",
    "https://aws.amazon.com/secrets-manager/pricing/",
    "https://aws.amazon.com/route53/pricing/",
)

HOURS_PER_MONTH: Final = 730.0

PRICES: Final[dict[str, tuple[float, str]]] = {
    # name: (USD, unit)
    # -- DynamoDB (on-demand, standard table class)
    "dynamodb_write_request_unit": (0.625 / 1e6, "per on-demand write request unit (1 KB)"),
    "dynamodb_read_request_unit": (0.125 / 1e6, "per on-demand read request unit (4 KB)"),
    "dynamodb_replicated_write_unit": (0.625 / 1e6, "per replicated write unit (global table)"),
    "dynamodb_storage_gb_month": (0.25, "per GB-month stored"),
    "dynamodb_pitr_gb_month": (0.20, "per GB-month, point-in-time recovery"),
    "inter_region_transfer_gb": (0.02, "per GB sent to another region"),
    # -- Kinesis Data Streams
    "kinesis_on_demand_stream_hour": (0.04, "per stream-hour, on-demand"),
    "kinesis_on_demand_ingest_gb": (0.08, "per GB written (records rounded up to 1 KB)"),
    "kinesis_on_demand_retrieve_gb": (0.04, "per GB read, on-demand"),
    "kinesis_on_demand_retention_gb_month": (0.10, "per GB-month held beyond 24 h, on-demand"),
    "kinesis_shard_hour": (0.015, "per shard-hour, provisioned"),
    "kinesis_put_payload_unit": (0.014 / 1e6, "per 25 KB PUT payload unit, provisioned"),
    "kinesis_retention_shard_hour": (0.02, "per shard-hour beyond 24 h, provisioned"),
    # -- Data Firehose (Kinesis stream source, S3 destination)
    "firehose_ingest_gb": (0.029, "per GB ingested, records rounded up to 5 KB"),
    "firehose_partitioning_gb": (0.02, "per GB through dynamic partitioning"),
    "firehose_partitioning_objects": (0.005 / 1000, "per S3 object delivered (partitioning)"),
    "firehose_jq_hour": (0.07, "per JQ processing hour"),
    # -- IoT Core
    "iot_message": (1.00 / 1e6, "per message (5 KB increments), first 1 B a month"),
    "iot_connection_minute": (0.08 / 1e6, "per connection-minute"),
    "iot_rule_triggered": (0.15 / 1e6, "per rule triggered (5 KB increments)"),
    "iot_rule_action": (0.15 / 1e6, "per action executed (5 KB increments)"),
    # -- compute
    "lambda_request": (0.20 / 1e6, "per invocation"),
    "lambda_gb_second": (0.0000166667, "per GB-second, x86"),
    "fargate_vcpu_hour": (0.04048, "per vCPU-hour, Linux x86"),
    "fargate_gb_hour": (0.004445, "per GB-hour, Linux x86"),
    "alb_hour": (0.0225, "per load balancer-hour"),
    "alb_lcu_hour": (0.008, "per LCU-hour"),
    "public_ipv4_hour": (0.005, "per public IPv4 address-hour"),
    # -- network
    "interface_endpoint_az_hour": (0.01, "per interface endpoint per AZ-hour"),
    "interface_endpoint_gb": (0.01, "per GB through interface endpoints"),
    "nat_gateway_hour": (0.045, "per NAT gateway-hour"),
    "nat_gateway_gb": (0.045, "per GB through a NAT gateway"),
    # -- query model
    "timestream_write_1kb": (0.50 / 1e6, "per 1 KB write (LiveAnalytics)"),
    "timestream_memory_gb_hour": (0.036, "per GB-hour in the memory store (LiveAnalytics)"),
    "timestream_magnetic_gb_month": (0.03, "per GB-month in the magnetic store (LiveAnalytics)"),
    "influxdb_medium_hour": (0.27, "per db.influx.medium instance-hour, single-AZ"),
    "influxdb_storage_gb_month": (0.20, "per GB-month, Influx IO Included 3K storage"),
    # -- CloudWatch
    "cloudwatch_metric_month": (0.30, "per custom metric-month (first 10,000)"),
    "cloudwatch_logs_ingest_gb": (0.50, "per GB of log events ingested"),
    "cloudwatch_logs_storage_gb_month": (0.03, "per GB-month of logs stored (compressed)"),
    "cloudwatch_alarm_metric_month": (0.10, "per standard-resolution alarm metric-month"),
    "cloudwatch_dashboard_month": (3.00, "per dashboard-month"),
    # -- S3 (archive)
    "s3_standard_gb_month": (0.023, "per GB-month, S3 Standard"),
    "s3_ia_gb_month": (0.0125, "per GB-month, S3 Standard-IA"),
    "s3_glacier_ir_gb_month": (0.004, "per GB-month, S3 Glacier Instant Retrieval"),
    "s3_deep_archive_gb_month": (0.00099, "per GB-month, S3 Glacier Deep Archive"),
    "s3_put": (0.005 / 1000, "per PUT/COPY/POST request"),
    "s3_transition": (0.01 / 1000, "per lifecycle transition request (to IA)"),
    "s3_rtc_gb": (0.015, "per GB replicated with Replication Time Control"),
    # -- the rest of the region
    "kms_key_month": (1.00, "per customer managed key-month"),
    "kms_request": (0.03 / 10_000, "per KMS request"),
    "secret_month": (0.40, "per secret-month"),
    "route53_zone_month": (0.50, "per hosted zone-month"),
    "route53_health_check_month": (0.75, "per health check-month (non-alias endpoint)"),
    "ecr_gb_month": (0.10, "per GB-month of images stored"),
}

UNCERTAIN: Final = frozenset(
    {
        # The largest fixed line and the least sure: infra/README.md remembers about $0.27/h,
        # an analogy with RDS r7g prices (the classes match r7g) gives about $0.12/h; the
        # higher one is used.
        "influxdb_medium_hour",
        "influxdb_storage_gb_month",
        # The 2024-11-01 cut made it equal to a write unit, as remembered.
        "dynamodb_replicated_write_unit",
        "kinesis_on_demand_retention_gb_month",
        "firehose_jq_hour",
    }
)

METERING_CHECKED: Final[dict[str, str]] = {
    "kinesis_on_demand_ingest_gb": "on-demand Data-In counts each record rounded up to the "
    "nearest 1 KB (stored copy of the Kinesis Data Streams pricing page)",
    "firehose_ingest_gb": "ingestion counted per record in 5 KB increments, a 1 KB record is "
    "billed as 5 KB (a secondary source quoting the Firehose pricing page)",
    "iot_message": "an MQTT PUBLISH from a device is metered on its payload and topic size "
    "(stored copy of the IoT Core additional metering details page)",
    "timestream_write_1kb": "writes are metered in 1 KB units; memory store $0.036 per "
    "GB-hour and magnetic $0.03 per GB-month on a 2020 copy (US East, Ohio) of the pricing page",
}


def price(name: str) -> float:
    """The USD price of one unit of `name`."""
    return PRICES[name][0]


def table() -> dict[str, dict[str, object]]:
    """Every price with its unit and how surely it is known, for the JSON report."""
    return {
        name: {
            "usd": usd,
            "unit": unit,
            "uncertain": name in UNCERTAIN,
            "metering_checked": METERING_CHECKED.get(name),
        }
        for name, (usd, unit) in PRICES.items()
    }
