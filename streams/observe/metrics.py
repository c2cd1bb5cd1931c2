"""The worker's metrics: their names (fixed: the CDK app alarms on them), and the aggregation
of the counters the runtime already keeps into series.

Pull model: nothing on the record path emits anything. A `WorkerStatus` is a snapshot of those
counters (per shard: the engine's `EngineCounters`, its sinks' `SinkCounters`, the runner's
progress; per worker: leases and registry), built on a timer (`streams.observe.status`).
`Metrics.update(status)` turns the increase of every counter since the previous snapshot into
running totals (a rebuilt engine, whose counters restart at 0, is told apart by its
`generation`). The EMF writer takes the increase since its last flush (`take_flush`), the
Prometheus endpoint the totals, `/readyz` the checkpoint ages. The metric volume grows with
shards and sinks, never with the record rate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final

import msgspec

from core.clock import Clock, wall_clock_ms

NAMESPACE: Final = "Luxflow"
"""CloudWatch namespace of every metric; the dimension `App` is the application name."""

ALARM_METRICS: Final = ("MillisBehindLatest", "DeadLetters", "SinkErrors", "CheckpointAgeMs")
"""The metrics the CDK app's alarms watch (dimension set [App])."""

# Scopes: which dimensions a series has (besides App) and so which EMF dimension sets it gets.
SHARD: Final = "shard"  # Shard; also published to [App]
SINK: Final = "sink"  # Shard, Sink; also published to [App, Sink]
REASON: Final = "reason"  # Reason ([App, Reason]; Shard is a property, not a dimension)
WORKER: Final = "worker"  # [App] only

# Kinds: counter (EMF: increase per flush; Prometheus: total), gauge (last value),
# mean (EMF: mean over the flush interval; Prometheus: a summary's _sum and _count).
COUNTER: Final = "counter"
GAUGE: Final = "gauge"
MEAN: Final = "mean"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    """CloudWatch unit."""
    kind: str
    scope: str
    statistic: str
    """The CloudWatch statistic that reads it right across shards and workers."""
    meaning: str


CATALOG: Final = (
    MetricSpec("RecordsRead", "Count", COUNTER, SHARD, "Sum",
               "Records handed to the engine (including ones already in the restored state)."),
    MetricSpec("RecordsProcessed", "Count", COUNTER, SHARD, "Sum",
               "Records decoded and run through the agents (read minus skipped and undecodable)."),
    MetricSpec("LateRecords", "Count", COUNTER, SHARD, "Sum",
               "Records beyond the window grace (dead-lettered with reason late)."),
    MetricSpec("DeadLetters", "Count", COUNTER, SHARD, "Sum",
               "Dead letters written, all reasons; per Reason in the [App, Reason] series."),
    MetricSpec("Checkpoints", "Count", COUNTER, SHARD, "Sum", "Checkpoints written."),
    MetricSpec("SinkErrors", "Count", COUNTER, SHARD, "Sum",
               "Sink flushes that failed after retries; each aborted a checkpoint."),
    MetricSpec("SnapshotBytesWritten", "Bytes", COUNTER, SHARD, "Sum",
               "Bytes of state snapshots saved."),
    MetricSpec("CheckpointDurationMs", "Milliseconds", MEAN, SHARD, "Average",
               "Mean time of a checkpoint step (flush sinks, save state, write checkpoint)."),
    MetricSpec("MillisBehindLatest", "Milliseconds", GAUGE, SHARD, "Maximum",
               "How far the last read was behind the tip of the shard (GetRecords / KCL)."),
    MetricSpec("CheckpointAgeMs", "Milliseconds", GAUGE, SHARD, "Maximum",
               "Time since the shard last checkpointed while work waits (0 when idle and "
               "caught up); /readyz fails above readiness_checkpoint_intervals intervals."),
    MetricSpec("StateKeys", "Count", GAUGE, SHARD, "Maximum",
               "Keys held in the tables (windowed: key and window pairs) at the last snapshot."),
    MetricSpec("StateBytes", "Bytes", GAUGE, SHARD, "Maximum", "Size of the last snapshot."),
    MetricSpec("SinkRequestLatencyMs", "Milliseconds", MEAN, SINK, "Average",
               "Mean time of one write call to the sink's store."),
    MetricSpec("SinkRetries", "Count", COUNTER, SINK, "Sum",
               "Write calls that re-sent something (after an error or a partial failure)."),
    MetricSpec("SinkThrottles", "Count", COUNTER, SINK, "Sum", "Write calls refused as throttled."),
    MetricSpec("SinkRejectedItems", "Count", COUNTER, SINK, "Sum",
               "Items the store rejected (dead-lettered with the store's reason)."),
    MetricSpec("ShardsHeld", "Count", GAUGE, WORKER, "Maximum",
               "Shards this worker processes (leased, or failed and retrying)."),
    MetricSpec("LeaseTakeovers", "Count", COUNTER, WORKER, "Sum",
               "Leases taken from another worker whose lease had expired."),
    MetricSpec("LeaseLosses", "Count", COUNTER, WORKER, "Sum",
               "Leases lost to another worker while processing."),
    MetricSpec("RegistryAgeMs", "Milliseconds", GAUGE, WORKER, "Maximum",
               "Age of the asset registry the agents use (reloaded every registry_refresh_ms)."),
    MetricSpec("UnknownAssets", "Count", GAUGE, WORKER, "Maximum",
               "Distinct assets seen that are not in the registry (site defaults apply)."),
)  # fmt: skip

SPECS: Final = {spec.name: spec for spec in CATALOG}

# Shard phases. RUNNING and FAILED shards are this worker's to process (they count in
# ShardsHeld and /readyz); ENDED and RELEASED ones only report their last counts.
RUNNING: Final = "running"
FAILED: Final = "failed"
ENDED: Final = "ended"
RELEASED: Final = "released"


class SinkStatus(msgspec.Struct, frozen=True):
    calls: int = 0
    retries: int = 0
    throttles: int = 0
    rejected: int = 0
    request_us: int = 0


class ShardStatus(msgspec.Struct, frozen=True):
    """One shard's counters at one moment. Counters are totals since `generation` began (an
    engine: they restart at 0 with the next one)."""

    shard_id: str
    generation: str
    phase: str = RUNNING
    records_read: int = 0
    records_processed: int = 0
    late_records: int = 0
    checkpoints: int = 0
    checkpoint_us: int = 0
    last_checkpoint_ms: int = 0
    sink_errors: int = 0
    state_keys: int = 0
    state_bytes: int = 0
    snapshot_bytes: int = 0
    dead_letters: dict[str, int] = {}
    sinks: dict[str, SinkStatus] = {}
    millis_behind: int | None = None
    pending: bool = False
    """Records or outputs wait for a checkpoint."""
    caught_up: bool = False
    """The last read returned nothing and was at the tip of the shard."""
    error: str | None = None
    updated_ms: int = 0


class WorkerStatus(msgspec.Struct, frozen=True):
    shards: list[ShardStatus]
    lease_takeovers: int = 0
    """Totals since the worker started."""
    lease_losses: int = 0
    registry_loaded_ms: int | None = None
    unknown_assets: int | None = None


Dims = tuple[tuple[str, str], ...]
"""A series' dimensions besides App, e.g. (("Shard", "shardId-0"),)."""
Series = tuple[str, Dims]

_SHARD_COUNTERS: Final = (
    ("RecordsRead", "records_read"),
    ("RecordsProcessed", "records_processed"),
    ("LateRecords", "late_records"),
    ("Checkpoints", "checkpoints"),
    ("SinkErrors", "sink_errors"),
    ("SnapshotBytesWritten", "snapshot_bytes"),
)
_SINK_COUNTERS: Final = (
    ("SinkRetries", "retries"),
    ("SinkThrottles", "throttles"),
    ("SinkRejectedItems", "rejected"),
)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checkpoint_age_ms: dict[str, int]
    """Per shard this worker processes."""
    max_checkpoint_age_ms: int


@dataclass(frozen=True)
class FlushLine:
    """The series of one dimension combination for one EMF line."""

    scope: str
    dims: Dims
    values: dict[str, float]


class Metrics:
    """Series built from successive `WorkerStatus` snapshots. Thread-safe."""

    def __init__(self, *, max_checkpoint_age_ms: int, now_ms: Clock = wall_clock_ms) -> None:
        self.max_checkpoint_age_ms = max_checkpoint_age_ms
        self._now_ms = now_ms
        self.lock = threading.Lock()
        self._raw: dict[str, tuple[str, dict[str, int]]] = {}  # shard -> (generation, raw)
        self._worker_raw: dict[str, int] = {}
        self.totals: dict[Series, int] = {}
        self.mean_sums: dict[Series, tuple[int, int]] = {}  # (sum in us, count)
        self.gauges: dict[Series, float] = {}
        self._flushed: dict[Series, int] = {}
        self._flushed_means: dict[Series, tuple[int, int]] = {}
        self._ok_ms: dict[str, int] = {}  # shard -> when it was last known fully checkpointed
        self._ages: dict[str, int] = {}
        self._active: set[str] = set()

    # -- update ----------------------------------------------------------------------------

    def update(self, status: WorkerStatus) -> None:
        now_ms = self._now_ms()
        with self.lock:
            self.gauges = {}
            for shard in status.shards:
                self._update_shard(shard, now_ms)
            self._active = {s.shard_id for s in status.shards if s.phase in (RUNNING, FAILED)}
            for shard_id in list(self._ok_ms):
                if shard_id not in self._active:
                    del self._ok_ms[shard_id]
                    self._ages.pop(shard_id, None)
            self.gauges[("ShardsHeld", ())] = len(self._active)
            self._add("LeaseTakeovers", (), self._worker_delta("takeovers", status.lease_takeovers))
            self._add("LeaseLosses", (), self._worker_delta("losses", status.lease_losses))
            if status.registry_loaded_ms is not None:
                self.gauges[("RegistryAgeMs", ())] = max(0, now_ms - status.registry_loaded_ms)
            if status.unknown_assets is not None:
                self.gauges[("UnknownAssets", ())] = status.unknown_assets

    def _update_shard(self, shard: ShardStatus, now_ms: int) -> None:
        generation, last = self._raw.get(shard.shard_id, ("", {}))
        if generation != shard.generation:
            last = {}
        raw: dict[str, int] = {}

        def delta(key: str, value: int) -> int:
            raw[key] = value
            before = last.get(key, 0)
            return value - before if value >= before else value

        dims: Dims = (("Shard", shard.shard_id),)
        for name, attr in _SHARD_COUNTERS:
            self._add(name, dims, delta(attr, getattr(shard, attr)))
        dead_total = 0
        for origin, count in shard.dead_letters.items():
            increase = delta(f"dead:{origin}", count)
            dead_total += increase
            self._add("DeadLetters", (("Reason", origin), ("Shard", shard.shard_id)), increase)
        self._add("DeadLetters", dims, dead_total)
        self._add_mean(
            "CheckpointDurationMs",
            dims,
            delta("checkpoint_us", shard.checkpoint_us),
            delta("checkpoints#mean", shard.checkpoints),
        )
        for sink, counters in shard.sinks.items():
            sink_dims: Dims = (("Shard", shard.shard_id), ("Sink", sink))
            for name, attr in _SINK_COUNTERS:
                self._add(name, sink_dims, delta(f"{sink}:{attr}", getattr(counters, attr)))
            self._add_mean(
                "SinkRequestLatencyMs",
                sink_dims,
                delta(f"{sink}:request_us", counters.request_us),
                delta(f"{sink}:calls", counters.calls),
            )
        self._raw[shard.shard_id] = (shard.generation, raw)
        if shard.phase not in (RUNNING, FAILED):
            return
        ok_ms = max(self._ok_ms.get(shard.shard_id, now_ms), shard.last_checkpoint_ms)
        clean = (
            shard.phase == RUNNING and shard.error is None and shard.caught_up and not shard.pending
        )
        if clean:
            ok_ms = now_ms
        self._ok_ms[shard.shard_id] = ok_ms
        self._ages[shard.shard_id] = age_ms = max(0, now_ms - ok_ms)
        self.gauges[("CheckpointAgeMs", dims)] = age_ms
        if shard.millis_behind is not None:
            self.gauges[("MillisBehindLatest", dims)] = shard.millis_behind
        self.gauges[("StateKeys", dims)] = shard.state_keys
        self.gauges[("StateBytes", dims)] = shard.state_bytes

    def _worker_delta(self, key: str, value: int) -> int:
        before = self._worker_raw.get(key, 0)
        self._worker_raw[key] = value
        return value - before if value >= before else value

    def _add(self, name: str, dims: Dims, increase: int) -> None:
        series = (name, dims)
        self.totals[series] = self.totals.get(series, 0) + increase

    def _add_mean(self, name: str, dims: Dims, sum_us: int, count: int) -> None:
        series = (name, dims)
        total_us, total = self.mean_sums.get(series, (0, 0))
        self.mean_sums[series] = (total_us + sum_us, total + count)

    # -- readers ---------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ready when every shard this worker processes has checkpointed within
        `max_checkpoint_age_ms`, or is idle and caught up (as of the last `update`)."""
        with self.lock:
            ages = dict(self._ages)
        limit = self.max_checkpoint_age_ms
        return Readiness(all(a <= limit for a in ages.values()), ages, limit)

    def take_flush(self) -> list[FlushLine]:
        """What happened since the previous flush: counter increases (zeros included, so
        alarms see data), means over the interval (when there were events) and the gauges,
        grouped into one line per dimension combination."""
        with self.lock:
            lines: dict[Dims, dict[str, float]] = {}

            def put(series: Series, value: float) -> None:
                name, dims = series
                lines.setdefault(dims, {})[name] = value

            for series, total in self.totals.items():
                increase = total - self._flushed.get(series, 0)
                shard = _dim(series[1], "Shard")
                # Zeros keep alarms fed, but only for shards this worker still processes.
                if increase or shard is None or shard in self._active:
                    put(series, increase)
            self._flushed = dict(self.totals)
            for series, (sum_us, count) in self.mean_sums.items():
                before_us, before = self._flushed_means.get(series, (0, 0))
                if count > before:
                    put(series, round((sum_us - before_us) / (count - before) / 1000, 3))
            self._flushed_means = dict(self.mean_sums)
            for series, value in self.gauges.items():
                put(series, value)
        return [FlushLine(scope_of(dims), dims, values) for dims, values in lines.items()]

    def total(self, name: str, **dims: str) -> int:
        """The total of counter `name` over every series whose dimensions include `dims`."""
        with self.lock:
            return sum(
                value
                for (series_name, series_dims), value in self.totals.items()
                if series_name == name and all(_dim(series_dims, k) == v for k, v in dims.items())
            )


def scope_of(dims: Dims) -> str:
    names = {name for name, _ in dims}
    if "Reason" in names:
        return REASON
    if "Sink" in names:
        return SINK
    return SHARD if "Shard" in names else WORKER


def _dim(dims: Dims, name: str) -> str | None:
    for key, value in dims:
        if key == name:
            return value
    return None
