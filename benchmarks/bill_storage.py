"""What luxflow stores, as bill lines: DynamoDB (command model and its replica, state
snapshots, leases, the registry reads, storage) and the raw-record archive (Firehose, S3).
Part of `benchmarks.bill`; the constants are assumptions, named in each line."""

from __future__ import annotations

import math

from benchmarks import cost
from benchmarks.bill_lines import Line
from benchmarks.prices import price as p
from benchmarks.stack import (
    GB,
    HORIZON_MONTHS,
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    Measured,
    Stack,
    assets,
    kb_rounded,
    records_per_month,
    records_per_s,
    region_shards,
    worker_tasks,
)

RULE_FIELDS_BYTES = 70  # topic_site_id, topic_asset_id, client_id added by the rule
KCL_COORDINATION_WRITES_PER_WORKER_HOUR = 120.0  # KCL 3 worker metrics every 30 s
KCL_LEADER_SCANS_PER_HOUR = 180.0  # the leader reads the lease table every 20 s
LEASE_ITEM_BYTES = 500
HOME_BYTES_PER_SITE = 100  # a site's home-region item (DR gate), read with the registry
FIREHOSE_JQ_US_PER_RECORD = 20.0
ARCHIVE_BUFFER_S = 300  # Firehose buffer: one object per site per 5 minutes
S3_IA_MIN_OBJECT_KB = 128  # Standard-IA and Glacier IR bill small objects as 128 KB
COMMAND_KINDS = ("dynamodb_current_state", "dynamodb_events", "dynamodb_usage")


def dynamodb_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    n = records_per_month(sites, m)
    u = m.units_per_1000
    wru, rru = p("dynamodb_write_request_unit"), p("dynamodb_read_request_unit")
    command_units = sum(u.get(k, 0.0) for k in COMMAND_KINDS) * n / 1000
    item_bytes = sum(u.get(k, 0.0) * m.item_bytes.get(k, 1024.0) for k in COMMAND_KINDS)
    shards = region_shards(sites, stack, m)
    hours = HOURS_PER_MONTH
    checkpoints_per_hour = 3_600_000 / m.checkpoint_interval_ms
    lease_writes = hours * (
        sum(shards) * cost.LEASE_RENEWALS_PER_SHARD_HOUR + shards[0] * checkpoints_per_hour
    )
    workers = [
        worker_tasks(s, records_per_s(sites, m) if i == 0 else 0.0, stack, m)
        for i, s in enumerate(shards)
    ]
    kcl_writes = hours * sum(workers) * KCL_COORDINATION_WRITES_PER_WORKER_HOUR
    kcl_reads = (
        hours
        * KCL_LEADER_SCANS_PER_HOUR
        * sum(max(1, math.ceil(s * LEASE_ITEM_BYTES / 4096)) / 2 for s in shards)
    )
    loads = SECONDS_PER_MONTH * 1000 / m.registry_refresh_ms
    per_load = math.ceil(assets(sites) * m.registry_bytes_per_asset / 4096) + math.ceil(
        sites * HOME_BYTES_PER_SITE / 4096
    )
    registry_reads = sum(shards) * loads * per_load
    heads = hours * shards[0] * m.snapshot_saves_per_shard_hour
    chunks = m.snapshot_kb_per_1000 * n / 1000
    growing_gb = (
        n
        / 1000
        * (
            item_bytes
            - u.get("dynamodb_current_state", 0.0) * m.item_bytes.get("dynamodb_current_state", 0.0)
        )
        / GB
    )
    command_gb = (
        assets(sites)
        * (m.item_bytes.get("dynamodb_current_state", 1024.0) + m.registry_bytes_per_asset)
        / GB
        + HORIZON_MONTHS * growing_gb
    )
    state_gb = sites * m.state_bytes_per_site / GB
    stored = p("dynamodb_storage_gb_month") + p("dynamodb_pitr_gb_month")
    replicas = stack.regions - 1
    return [
        Line(
            "DynamoDB",
            "command model writes",
            command_units * wru,
            "per reading",
            "current state, faults, spikes, usage: write units measured by the cost run",
        ),
        Line(
            "DynamoDB",
            "global table replication",
            replicas
            * (
                command_units * p("dynamodb_replicated_write_unit")
                + n / 1000 * item_bytes / GB * p("inter_region_transfer_gb")
            ),
            "per reading",
            f"every command-model write replicated to {replicas} other region(s)",
        ),
        Line(
            "DynamoDB",
            "state snapshots",
            (heads + chunks) * wru,
            "per reading + per shard",
            f"measured: {m.snapshot_kb_per_1000:.1f} KB of chunks per 1,000 records and "
            f"{m.snapshot_saves_per_shard_hour:.0f} head writes per busy shard-hour",
        ),
        Line(
            "DynamoDB",
            "leases, checkpoints, KCL 3 tables",
            (lease_writes + kcl_writes) * wru + kcl_reads * rru,
            "per shard",
            f"{cost.LEASE_RENEWALS_PER_SHARD_HOUR:.0f} renewals per shard-hour in every "
            f"region ({'+'.join(map(str, shards))} shards), a checkpoint every "
            f"{m.checkpoint_interval_ms / 1000:g} s per busy shard; KCL 3: a worker-metrics "
            "write per worker per 30 s, a lease-table scan every 20 s (assumed)",
        ),
        Line(
            "DynamoDB",
            "registry and homes reads",
            registry_reads * rru,
            "per shard x per site",
            f"every shard processor reloads the whole registry partition "
            f"({m.registry_bytes_per_asset:.0f} B per asset) and the site homes every "
            f"{m.registry_refresh_ms / 1000:g} s, strongly consistent: grows with sites x shards",
        ),
        Line(
            "DynamoDB",
            "dead letters",
            u.get("dynamodb_dead_letters", 0.0) * n / 1000 * wru,
            "per reading",
            "measured on clean simulated input",
        ),
        Line(
            "DynamoDB",
            "storage + PITR",
            (stack.regions * command_gb + state_gb) * stored,
            "per GB",
            f"current state and registry, usage and events of {HORIZON_MONTHS} "
            "months (upper bound: a unit per write), in every region; state table at home",
        ),
    ]


def archive_lines(sites: int, stack: Stack, m: Measured) -> list[Line]:
    if not stack.archive:
        return []
    n = records_per_month(sites, m)
    raw = m.bytes_per_record + RULE_FIELDS_BYTES + 1
    raw_gb = n * raw / GB
    objects = sites * SECONDS_PER_MONTH / ARCHIVE_BUFFER_S
    stored_gb = raw_gb / m.archive_gzip_ratio
    object_kb = stored_gb * GB / 1024 / objects
    small = max(1.0, S3_IA_MIN_OBJECT_KB / object_kb)  # IA and Glacier IR minimum object size
    # In the 12th month: 1 month in Standard, 2 in Standard-IA, 9 in Glacier Instant Retrieval.
    per_bucket = stored_gb * (
        p("s3_standard_gb_month")
        + small * (2 * p("s3_ia_gb_month") + (HORIZON_MONTHS - 3) * p("s3_glacier_ir_gb_month"))
    )
    copies = 2 if stack.regions > 1 else 1
    return [
        Line(
            "Archive",
            "Firehose ingestion",
            n * kb_rounded(raw, 5120) * 1024 / GB * p("firehose_ingest_gb"),
            "per reading",
            "each record rounded up to 5 KB",
        ),
        Line(
            "Archive",
            "dynamic partitioning",
            raw_gb * p("firehose_partitioning_gb")
            + objects * p("firehose_partitioning_objects")
            + n * FIREHOSE_JQ_US_PER_RECORD / 1e6 / 3600 * p("firehose_jq_hour"),
            "per reading",
            f"by site: an object per site per {ARCHIVE_BUFFER_S // 60} min; JQ "
            f"{FIREHOSE_JQ_US_PER_RECORD:g} us per record (assumed)",
        ),
        Line(
            "Archive",
            "S3 storage (+ replica)",
            copies * per_bucket,
            "per GB",
            f"GZIP {m.archive_gzip_ratio:.1f}:1 (measured), month {HORIZON_MONTHS} of the "
            f"lifecycle, {object_kb:.0f} KB objects billed as {S3_IA_MIN_OBJECT_KB} KB in IA/GIR",
        ),
        Line(
            "Archive",
            "S3 requests and replication",
            copies * objects * (p("s3_put") + 2 * p("s3_transition"))
            + (copies - 1) * stored_gb * (p("s3_rtc_gb") + p("inter_region_transfer_gb")),
            "per site",
            "a PUT and two transitions per object, RTC and transfer to the peer region",
        ),
    ]
