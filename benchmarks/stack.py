"""What the CDK app in infra/ deploys, as the numbers the whole-stack bill (`benchmarks.bill`)
multiplies, and what the bill takes from running the code (`Measured`).

Two deployments, read from the TypeScript (the bill says which one it prices):

- `DEPLOYED` (the default): infra/ as the `infra` branch made it for issue 25 (6f74dde, then
  e2eec76 with the archive and the device domain; on main since its merge 56fcedd, checked at
  27f420d): Timestream for InfluxDB (db.influx.medium, 20 GB,
  single-AZ; query-store.ts), no NAT gateway but five interface endpoints in both zones
  (Kinesis, ECR api and dkr, CloudWatch Logs, Secrets Manager) plus the free DynamoDB and S3
  gateway endpoints (network.ts), stream retention 48 h (config.ts), the read API as its own
  service (2 tasks of 0.25 vCPU / 0.5 GB) behind an HTTPS load balancer (api-service.ts), the
  raw-record archive (Firehose with dynamic partitioning by site, GZIP, 5 min buffer, S3 with
  a lifecycle and replication with RTC to the peer region; archive.ts), a refused-telemetry
  rule on the same topic filter (devices.ts), a Route 53 health check per region
  (device-domain.ts), about 25 alarm metrics, 4 secrets and one customer managed key per
  region.
- `BEFORE_ISSUE_25` (infra/ at ad17468, this branch's base): Timestream LiveAnalytics, one
  NAT gateway, 24 h retention, no read API service, no archive, one rule, 4 alarms.

Both: two regions (us-east-1, eu-west-1), each running the whole pipeline; the command model
a global table (a replica in the other region); an on-demand stream; worker tasks of 1 vCPU /
2 GB, at least 2 per region (scaling on lag up to the shard count); Container Insights on.
Every site's telemetry goes to its one home region; the other region runs idle (its fixed
costs count, its traffic does not). All prices are us-east-1's (`benchmarks.prices`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.cost import (
    CPU_UTILISATION,
    DAYS_PER_MONTH,
    SHARD_FILL,
    SHARD_RECORDS_PER_S,
    SITE_BYTES_PER_DAY,
)
from benchmarks.workload import ASSETS_PER_SITE

SECONDS_PER_MONTH = DAYS_PER_MONTH * 86_400
MINUTES_PER_MONTH = DAYS_PER_MONTH * 1_440
HOURS_PER_MONTH = DAYS_PER_MONTH * 24
GB = 1024**3
DAEMON_MB = 400.0  # KCL MultiLangDaemon JVM + the worker process, per task (assumed)
PROCESSOR_MB = 30.0  # one `luxflow kcl-processor` per shard (29.1 MB measured), when not measured
TASK_MEMORY_USE = 0.8
HORIZON_MONTHS = 12
"""Stores that only grow (usage reports, the archive, the magnetic store) are priced as they
are in the 12th month of a deployment."""


@dataclass(frozen=True)
class Stack:
    name: str
    regions: int = 2
    azs: int = 2
    interface_endpoints: int = 5
    nat_gateways: int = 0
    query_model: str = "influxdb"
    influx_storage_gb: float = 20.0
    retention_hours: int = 48
    on_demand_min_shards: int = 4
    worker_vcpu: float = 1.0
    worker_gb: float = 2.0
    min_workers: int = 2
    api_tasks: int = 2
    api_vcpu: float = 0.25
    api_gb: float = 0.5
    load_balancer: bool = True
    archive: bool = True
    rules_per_message: int = 2
    alarm_metrics: int = 25
    secrets: int = 4
    kms_keys: int = 1
    health_checks: int = 1
    container_insights_metrics: int = 55
    """Container Insights (standard) publishes about 11 cluster, 13 per-service and 8
    per-task-family metrics (assumed from its metric list; two services)."""
    notes: tuple[str, ...] = field(default=())


DEPLOYED = Stack("infra/ after issue 25 (56fcedd on main): InfluxDB, interface endpoints")
BEFORE_ISSUE_25 = Stack(
    "infra/ before issue 25 (ad17468): LiveAnalytics, 1 NAT gateway",
    interface_endpoints=0,
    nat_gateways=1,
    query_model="timestream",
    retention_hours=24,
    api_tasks=0,
    load_balancer=False,
    archive=False,
    rules_per_message=1,
    alarm_metrics=5,
    secrets=0,
    kms_keys=0,
    health_checks=0,
    container_insights_metrics=43,
)


@dataclass(frozen=True)
class Measured:
    """What the bill takes from running this code; `benchmarks.bill_inputs` fills it."""

    bytes_per_record: float
    """Mean telemetry payload of the workload (simulator readings)."""
    cpu_us_per_record: float
    """CPU of the whole pipeline per record (decode, agents, tables, sinks' requests)."""
    checkpoint_interval_ms: int
    units_per_1000: dict[str, float]
    """DynamoDB write units by kind and Timestream 1 KB units per 1,000 records: the cost run
    (the real engine at production rate, `benchmarks.cost`)."""
    item_bytes: dict[str, float]
    """Mean bytes of a command-model item by kind, from the same run."""
    snapshot_kb_per_1000: float
    """State-snapshot chunk bytes (in KB) per 1,000 records."""
    snapshot_saves_per_shard_hour: float
    """Snapshot saves (each one head item write) of a shard with traffic, per hour."""
    state_bytes_per_site: float
    """Live state of one site in the state table (its share of the last base snapshot)."""
    metrics_per_shard: int
    """Distinct CloudWatch metrics (name + dimension values) each shard adds, from the
    runtime's own EMF lines; `metrics_shared`: those of [App], [App, Sink], ... (once)."""
    metrics_shared: int
    emf_bytes_per_shard_flush: float
    emf_bytes_shared_flush: float
    metrics_flush_interval_ms: int
    registry_bytes_per_asset: float
    """Bytes of one asset's registry item as `store_registry` writes it."""
    registry_refresh_ms: int
    archive_gzip_ratio: float
    """Raw bytes / GZIP bytes of a site's 5-minute archive object (JSON lines)."""
    kcl_processor_mb: float | None = None


# -- quantities every bill line shares ------------------------------------------------------


def records_per_month(sites: int, m: Measured) -> float:
    return sites * SITE_BYTES_PER_DAY / m.bytes_per_record * DAYS_PER_MONTH


def records_per_s(sites: int, m: Measured) -> float:
    return records_per_month(sites, m) / SECONDS_PER_MONTH


def assets(sites: int) -> int:
    return sites * ASSETS_PER_SITE


def on_demand_shards(sites: int, m: Measured, stack: Stack) -> int:
    """Shards of an on-demand stream: at least its initial 4; it scales to twice the peak
    write rate of the last 30 days (1,000 records/s per shard; the load is flat here)."""
    return max(stack.on_demand_min_shards, math.ceil(2 * records_per_s(sites, m) / 1000))


def provisioned_shards(sites: int, m: Measured) -> int:
    """Shards of a provisioned stream run at half their 1,000 records/s (headroom)."""
    return max(1, math.ceil(records_per_s(sites, m) / (SHARD_RECORDS_PER_S * SHARD_FILL)))


def kb_rounded(size_bytes: float, unit_bytes: int = 1024) -> float:
    """Size in KB after rounding up to whole `unit_bytes` units (per-record metering)."""
    return math.ceil(size_bytes / unit_bytes) * unit_bytes / 1024


def region_shards(sites: int, stack: Stack, m: Measured) -> list[int]:
    """Shards per region: the home region carries every site, the others idle at the minimum."""
    return [on_demand_shards(sites, m, stack)] + [stack.on_demand_min_shards] * (stack.regions - 1)


def worker_tasks(shards: int, rps: float, stack: Stack, m: Measured) -> int:
    """Tasks a region runs: at least `min_workers`, enough vCPU for the measured CPU per record
    at `CPU_UTILISATION`, enough memory for the daemon and one processor per shard; never
    more than the shards (a worker beyond them holds no lease)."""
    vcpu = rps * m.cpu_us_per_record / 1e6 / CPU_UTILISATION
    memory_mb = DAEMON_MB + shards * (m.kcl_processor_mb or PROCESSOR_MB)
    needed = max(
        stack.min_workers,
        math.ceil(vcpu / stack.worker_vcpu),
        math.ceil(memory_mb / (stack.worker_gb * 1024 * TASK_MEMORY_USE)),
    )
    return min(needed, max(shards, stack.min_workers))
