"""AWS list prices used by the cost model (`benchmarks.cost`): one dated table, us-east-1.

AS OF 2024-11 (after DynamoDB's on-demand price cut of 2024-11-01), written from memory of the
public pricing pages named in `SOURCES`: the benchmark machine has no internet access, so these
were NOT fetched and MUST be checked against the pages before the figures are quoted. Prices
are in USD; "M" is a million.
"""

from __future__ import annotations

from typing import Final

REGION: Final = "us-east-1"
AS_OF: Final = "2024-11"
CHECKED_ONLINE: Final = False

SOURCES: Final = (
    "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "https://aws.amazon.com/kinesis/data-streams/pricing/",
    "https://aws.amazon.com/lambda/pricing/",
    "https://aws.amazon.com/fargate/pricing/",
    "https://aws.amazon.com/timestream/pricing/",
    "https://aws.amazon.com/iot-core/pricing/",
)

PRICES: Final[dict[str, tuple[float, str]]] = {
    # name: (USD, unit)
    "dynamodb_write_request_unit": (0.625 / 1e6, "per on-demand write request unit (1 KB)"),
    "dynamodb_read_request_unit": (0.125 / 1e6, "per on-demand read request unit (4 KB)"),
    "kinesis_on_demand_stream_hour": (0.04, "per stream-hour, on-demand"),
    "kinesis_on_demand_ingest_gb": (0.08, "per GB written, on-demand"),
    "kinesis_on_demand_retrieve_gb": (0.04, "per GB read, on-demand"),
    "lambda_request": (0.20 / 1e6, "per invocation"),
    "lambda_gb_second": (0.0000166667, "per GB-second, x86"),
    "fargate_vcpu_hour": (0.04048, "per vCPU-hour, Linux x86"),
    "fargate_gb_hour": (0.004445, "per GB-hour, Linux x86"),
    "timestream_write_1kb": (0.50 / 1e6, "per 1 KB write (LiveAnalytics)"),
    "iot_rule_action": (0.15 / 1e6, "per rule triggered, and again per action"),
}


def price(name: str) -> float:
    """The USD price of one unit of `name`."""
    return PRICES[name][0]
