"""`luxflow worker` (the default runner): one process reads every shard by polling.

One thread per leased shard runs a `ShardReader` into a `ShardEngine`. A child shard starts
only after all its parents have reached SHARD_END, and it takes its parents' state for its own
hash range. Leases are taken, renewed and released in the KCL lease table, so the KCL runner
can take over from this one and the reverse.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import LeaseLostError, LuxflowError
from core.records import AT_TIMESTAMP
from streams.checkpoints import Checkpointer
from streams.engine import EngineCounters, Lineage, ShardEngine
from streams.kinesis import ShardInfo, ShardReader, list_shards, partition_hash
from streams.leases import Lease, LeaseCheckpointer, LeaseTable

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, Checkpointer], ShardEngine]


@dataclass(frozen=True)
class LocalRunnerConfig:
    worker_id: str
    initial_position: str = "TRIM_HORIZON"
    at_timestamp_ms: int | None = None
    idle_poll_interval_ms: int = 1_000
    shard_sync_interval_ms: int = 10_000
    lease_renew_interval_ms: int = 3_000
    failover_ms: int = 10_000
    max_calls_per_s: float = 5.0
    stop_when_idle_ms: int | None = None
    """Stop once every open shard was caught up and quiet this long (demo, tests, replays)."""
    retry_failed_shard_ms: int = 2_000


@dataclass
class ShardProgress:
    records: int = 0
    millis_behind: int | None = None
    quiet_since_s: float | None = None
    ended: bool = False
    error: str | None = None
    failed_at_s: float = 0.0
    counters: EngineCounters = field(default_factory=EngineCounters)
    # Observability (issue 13): read by streams.metrics.
    engine: ShardEngine | None = None
    lease_takeovers: int = 0
    lease_losses: int = 0


class LocalRunner:
    """Reads every shard of one stream in this process until `stop()` (or idle, if asked)."""

    def __init__(
        self,
        kinesis: Any,
        stream_name: str,
        leases: LeaseTable,
        engine_factory: EngineFactory,
        config: LocalRunnerConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream_name
        self._leases = leases
        self._engine_factory = engine_factory
        self._config = config
        self._monotonic = monotonic
        self._checkpointer = LeaseCheckpointer(leases)
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._seen: dict[str, tuple[str | None, int, float]] = {}
        self._shards: dict[str, ShardInfo] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.errors: list[str] = []

    def stop(self) -> None:
        self._stop.set()

    def held_shards(self) -> list[str]:
        """The shards whose leases this runner holds now (safe from any thread)."""
        return list(self._checkpointer.held.copy())

    def run(self) -> None:
        """Block until stopped; then shut every shard down gracefully (flush, checkpoint)."""
        config = self._config
        shards: dict[str, ShardInfo] = {}
        next_sync_s = 0.0
        try:
            while not self._stop.is_set():
                now_s = self._monotonic()
                if now_s >= next_sync_s:
                    shards = {s.shard_id: s for s in list_shards(self._kinesis, self._stream)}
                    self._shards = shards
                    for shard in shards.values():
                        self._leases.create_if_missing(
                            shard.shard_id,
                            shard.parent_ids,
                            (shard.starting_hash_key, shard.ending_hash_key),
                            config.initial_position,
                            config.at_timestamp_ms
                            if config.initial_position == AT_TIMESTAMP
                            else None,
                        )
                    next_sync_s = now_s + config.shard_sync_interval_ms / 1000
                leases = self._leases.list()
                self._start_ready_shards(shards, leases)
                if self._all_quiet(shards, leases):
                    log.info("every shard is caught up and quiet: stopping")
                    break
                self._stop.wait(0.2)
        finally:
            self._stop.set()
            for thread in list(self._threads.values()):
                thread.join()

    # -- scheduling ----------------------------------------------------------------------

    def _start_ready_shards(self, shards: dict[str, ShardInfo], leases: dict[str, Lease]) -> None:
        if self._stop.is_set():
            return  # stopping: a shard that just released its lease must not start again
        for shard_id, thread in list(self._threads.items()):
            if not thread.is_alive():
                del self._threads[shard_id]
        for shard_id, shard in shards.items():
            lease = leases.get(shard_id)
            if lease is None or lease.finished or shard_id in self._threads:
                continue
            progress = self.progress.get(shard_id)
            if (
                progress is not None
                and progress.error is not None
                and self._monotonic() - progress.failed_at_s
                < self._config.retry_failed_shard_ms / 1000
            ):
                continue
            parents_done = all(
                leases[p].finished if p in leases else True for p in lease.parent_ids
            )
            if not parents_done or not self._may_take(lease):
                continue
            try:
                held = self._leases.take(lease, self._config.worker_id)
            except LeaseLostError:
                continue
            self._checkpointer.held[shard_id] = held
            if lease.owner not in (None, self._config.worker_id):
                self.progress.setdefault(shard_id, ShardProgress()).lease_takeovers += 1
            parent_ids = tuple(p for p in lease.parent_ids if p in leases)
            thread = threading.Thread(
                target=self._run_shard,
                args=(shard, held, parent_ids),
                name=f"shard-{shard_id}",
                daemon=True,
            )
            self._threads[shard_id] = thread
            thread.start()

    def _may_take(self, lease: Lease) -> bool:
        """Unowned or ours: yes. Another worker's: only once its counter stood still for the
        failover time, the KCL's own rule for an expired lease."""
        if lease.owner is None or lease.owner == self._config.worker_id:
            return True
        now_s = self._monotonic()
        seen = self._seen.get(lease.shard_id)
        if seen is None or seen[:2] != (lease.owner, lease.counter):
            self._seen[lease.shard_id] = (lease.owner, lease.counter, now_s)
            return False
        return now_s - seen[2] >= self._config.failover_ms / 1000

    def _all_quiet(self, shards: dict[str, ShardInfo], leases: dict[str, Lease]) -> bool:
        quiet_ms = self._config.stop_when_idle_ms
        if quiet_ms is None:
            return False
        now_s = self._monotonic()
        for shard_id in shards:
            lease = leases.get(shard_id)
            if lease is None:
                return False
            if lease.finished:
                continue
            progress = self.progress.get(shard_id)
            if progress is None or progress.error is not None or progress.quiet_since_s is None:
                return False
            if now_s - progress.quiet_since_s < quiet_ms / 1000:
                return False
        return True

    # -- one shard -----------------------------------------------------------------------

    def _run_shard(self, shard: ShardInfo, lease: Lease, parent_ids: tuple[str, ...]) -> None:
        shard_id = shard.shard_id
        progress = self.progress.setdefault(shard_id, ShardProgress())
        progress.error = None
        progress.quiet_since_s = None  # caught up only once this engine has read to the tip
        engine = self._engine_factory(shard_id, self._checkpointer)
        progress.counters = engine.counters
        progress.engine = engine
        try:
            engine.start(Lineage(parent_ids, lambda pk: shard.owns(partition_hash(pk))))
            reader = ShardReader(
                self._kinesis,
                self._stream,
                shard_id,
                lease.checkpoint,
                at_timestamp_ms=lease.at_timestamp_ms or self._config.at_timestamp_ms,
                ending_sequence_number=lambda: self._ending_sequence_number(shard_id),
                max_calls_per_s=self._config.max_calls_per_s,
            )
            self._consume(engine, reader, progress)
        except LeaseLostError as exc:
            log.warning("shard %s: lease lost: %s", shard_id, exc)
            progress.lease_losses += 1
            engine.lease_lost()
        except LuxflowError as exc:
            # Nothing after the last checkpoint is lost: the shard restarts from it.
            log.error("shard %s failed, will restart from its checkpoint: %s", shard_id, exc)
            engine.lease_lost()
            progress.error = str(exc)
            progress.failed_at_s = self._monotonic()
            self.errors.append(f"{shard_id}: {exc}")
            self._release(shard_id)
            return
        if not progress.ended:
            self._release(shard_id)

    def _consume(self, engine: ShardEngine, reader: ShardReader, progress: ShardProgress) -> None:
        config = self._config
        last_renew_s = self._monotonic()
        while not self._stop.is_set():
            batch = reader.read()
            if batch.records:
                engine.process(batch.records)
                progress.records += len(batch.records)
                progress.quiet_since_s = None
            else:
                engine.tick()
            progress.millis_behind = batch.millis_behind_latest
            if batch.shard_ended:
                engine.shard_ended()
                self._checkpointer.held.pop(engine.shard_id, None)
                progress.ended = True
                return
            if engine.checkpoint_due():
                engine.checkpoint()
            now_s = self._monotonic()
            if now_s - last_renew_s >= config.lease_renew_interval_ms / 1000:
                self._renew(engine.shard_id)
                last_renew_s = now_s
            if not batch.records and batch.millis_behind_latest == 0:
                if progress.quiet_since_s is None:
                    progress.quiet_since_s = now_s
                self._stop.wait(config.idle_poll_interval_ms / 1000)
        engine.shutdown_requested()

    def _ending_sequence_number(self, shard_id: str) -> int | None:
        shard = self._shards.get(shard_id)
        return shard.ending_sequence_number if shard is not None else None

    def _renew(self, shard_id: str) -> None:
        lease = self._checkpointer.held.get(shard_id)
        if lease is None:
            raise LeaseLostError(f"lease {shard_id} is no longer held")
        self._checkpointer.held[shard_id] = self._leases.renew(lease)

    def _release(self, shard_id: str) -> None:
        lease = self._checkpointer.held.pop(shard_id, None)
        if lease is not None:
            try:
                self._leases.release(lease)
            except LuxflowError as exc:
                log.warning("shard %s: could not release lease: %s", shard_id, exc)
