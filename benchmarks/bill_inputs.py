"""The quantities the whole-stack bill takes from running this code (`stack.Measured`), beside
the cost run's request units:

- the metric volume: the runtime's own `Metrics` fed the status of real engines (production
  sinks over null clients, some records processed), flushed, and written as EMF lines by its
  own `emf_line`: distinct CloudWatch metrics per shard and per region, bytes per flush;
- the registry item of one asset, as `store_registry` writes it (the shard processors reload
  the whole registry partition);
- the archive's compression: a site's readings of one 5-minute Firehose buffer, as the IoT
  rule forwards them (the payload plus the topic's ids and the client id), one JSON object a
  line, compressed with GZIP.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import msgspec

from benchmarks import workload
from benchmarks.cost import CostRun, site_interval_ms
from benchmarks.harness import NullDynamoDB, RequestCounters, build_engine
from benchmarks.stack import Measured
from core.clock import MINUTE_MS, ManualClock
from core.records import TRIM_HORIZON
from domain.registry import RegistryImport
from domain.telemetry import decode_reading
from lighting.registry import store_registry
from lighting.settings import Settings
from sim.params import SimParams
from sim.simulation import Simulation
from streams.app import App
from streams.observe.emf import dimension_sets, emf_line
from streams.observe.metrics import Metrics, WorkerStatus
from streams.observe.status import engine_status

ARCHIVE_BUFFER_MS = 5 * MINUTE_MS
GZIP_LEVEL = 6  # Firehose's level is not documented; zlib's default


def metric_volume(build_app: Callable[[], App]) -> dict[str, float]:
    """Distinct metrics and EMF bytes of one flush, split into what each shard adds and what a
    region has once: two shards' engines with records processed and a checkpoint taken."""
    load = workload.generate(workload.fleet(2, 10 * MINUTE_MS, episodes=False))
    records, shard_of = load.records, workload.site_sharding(load, 2)
    shard_ids = ("shardId-000000000000", "shardId-000000000001")
    clock = ManualClock(records[-1].arrival_ms)
    engines = []
    for index, shard_id in enumerate(shard_ids):
        engine = build_engine(build_app(), shard_id, RequestCounters(), clock)
        engine.initialize(TRIM_HORIZON)
        mine = [r for r in records if shard_of(r) == index]
        engine.process_records([msgspec.structs.replace(r, shard_id=shard_id) for r in mine])
        engine.checkpoint.commit()
        engines.append(engine)
    metrics = Metrics(max_checkpoint_age_ms=15_000, now_ms=clock)
    status = WorkerStatus(
        [engine_status(e, "g1", millis_behind=0, caught_up=True, now_ms=clock) for e in engines],
        registry_loaded_ms=clock(),
        unknown_assets=0,
    )
    metrics.update(status)
    per_shard: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    shared: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    shard_bytes = shared_bytes = 0
    for line in metrics.take_flush():
        size = len(emf_line("luxflow-lighting", "worker-1", line, clock())) + 1
        dims = dict(line.dims)
        if "Shard" in dims:
            shard_bytes += size
        else:
            shared_bytes += size
        for dimension_set in dimension_sets(line.scope):
            key = tuple((name, dims.get(name, "app")) for name in dimension_set)
            for name in line.values:
                (per_shard if "Shard" in dimension_set else shared).add((name, key))
    return {
        "metrics_per_shard": len(per_shard) / len(shard_ids),
        "metrics_shared": len(shared),
        "emf_bytes_per_shard_flush": shard_bytes / len(shard_ids),
        "emf_bytes_shared_flush": shared_bytes,
    }


def registry_bytes_per_asset() -> float:
    """Bytes of one asset's registry item, as `store_registry` writes a simulated fleet."""
    simulation = Simulation(
        SimParams(
            sites=2,
            buildings_per_site=2,
            rooms_per_building=2,
            lamps_per_room=4,
            sensors_per_room=1,
            duration_ms=MINUTE_MS,
            fault_count=0,
            spike_count=0,
        )
    )
    counters = RequestCounters()
    imported = RegistryImport(simulation.registry(), [], [])
    store_registry(NullDynamoDB(counters), "registry", imported)
    return counters.item_bytes["registry"] / counters.item_count["registry"]


def archive_gzip_ratio() -> float:
    """Raw / GZIP bytes of one site's 5-minute archive objects (JSON lines with the rule's
    added fields), over 30 minutes of one site at the design's rate."""
    probe = workload.generate(workload.fleet(1, 2 * MINUTE_MS, episodes=False))
    interval_ms = site_interval_ms(probe.payload_bytes / len(probe.records))
    params = workload.fleet(1, 30 * MINUTE_MS, episodes=False)
    load = workload.generate(msgspec.structs.replace(params, interval_ms=interval_ms))
    objects: dict[int, list[bytes]] = {}
    for record in load.records:
        doc = json.loads(record.data)
        ts_ms = decode_reading(record.data, record.arrival_ms).ts_ms
        doc.update(
            topic_site_id=doc["site_id"], topic_asset_id=doc["asset_id"], client_id=doc["asset_id"]
        )
        objects.setdefault(ts_ms // ARCHIVE_BUFFER_MS, []).append(json.dumps(doc).encode())
    raw = packed = 0
    for lines in objects.values():
        body = b"\n".join(lines) + b"\n"
        raw += len(body)
        packed += len(gzip.compress(body, compresslevel=GZIP_LEVEL))
    return raw / packed


def measured(
    run: CostRun,
    build_app: Callable[[], App],
    *,
    cpu_us_per_record: float | None,
    kcl_processor_mb: float | None,
) -> Measured:
    """The bill's inputs: the cost run at the default checkpoint, plus the three above."""
    settings = Settings()
    volume = metric_volume(build_app)
    return Measured(
        bytes_per_record=run.bytes_per_record,
        cpu_us_per_record=cpu_us_per_record or run.cpu_us_per_record,
        checkpoint_interval_ms=run.checkpoint_interval_ms,
        units_per_1000=dict(run.units_per_1000),
        item_bytes=dict(run.item_bytes),
        snapshot_kb_per_1000=run.snapshot_kb_per_1000,
        snapshot_saves_per_shard_hour=run.snapshot_saves_per_shard_hour,
        state_bytes_per_site=run.state_bytes_per_site,
        metrics_per_shard=round(volume["metrics_per_shard"]),
        metrics_shared=round(volume["metrics_shared"]),
        emf_bytes_per_shard_flush=volume["emf_bytes_per_shard_flush"],
        emf_bytes_shared_flush=volume["emf_bytes_shared_flush"],
        metrics_flush_interval_ms=settings.metrics_flush_interval_ms,
        registry_bytes_per_asset=registry_bytes_per_asset(),
        registry_refresh_ms=settings.registry_refresh_ms,
        archive_gzip_ratio=archive_gzip_ratio(),
        kcl_processor_mb=kcl_processor_mb,
    )
