"""`luxflow worker` (the default runner): one process reads every shard by polling.

One thread per leased shard reads it with a `ShardReader` and drives its `ShardProcessor`
(lifecycle: `streams.processor`). A child shard starts only after all its parents have reached
SHARD_END, and it takes its parents' state for its own hash range. Leases are taken, renewed
and released in the KCL lease table, so the KCL runner can take over from this one and the
reverse; a renewal thread keeps them independent of slow sink calls.

Faults: every AWS call retries transient errors itself (`core.retry`); what is still failing
after that fails the shard, never the worker. A failing shard is retried with capped
exponential backoff and reported unhealthy (`unhealthy()`, the worker's exit status); a shard
whose buffers are full stops reading until its checkpoint succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import ConfigError, LeaseLostError, LuxflowError, ShardBlockedError, causes
from core.records import AT_TIMESTAMP
from core.retry import Backoff, error_code
from streams.engine import ShardEngine
from streams.kinesis.leases import Lease, LeaseCheckpointer, LeaseTable
from streams.kinesis.reader import (
    Batch,
    ShardInfo,
    ShardReader,
    hash_range_lineage,
    list_shards,
)
from streams.processor import EngineCounters, EngineFactory, ShardHealth, ShardProcessor

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT = (LuxflowError, ClientError, BotoCoreError, OSError)
"""What a failed AWS step raises once its own retries are spent."""

MISCONFIGURED_CODES: Final = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }
)
"""Error codes that no retry fixes: the stream or a table is missing, or access is refused."""


def is_misconfigured(exc: BaseException) -> bool:
    """True when `exc`, or what caused it, says the deployment is missing or refused."""
    return any(
        isinstance(cause, ConfigError) or error_code(cause) in MISCONFIGURED_CODES
        for cause in causes(exc)
    )


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
    retry_base_ms: int = 500
    retry_cap_ms: int = 30_000
    """A failing step (a read, a shard start, the shard sync) is retried after a full-jitter
    pause of at most min(retry_cap_ms, retry_base_ms * 2**failures)."""


@dataclass
class ShardProgress:
    """One shard as this runner sees it. `source` counts read and start failures;
    `processor` is the processor's own health (its checkpoints)."""

    shard_id: str
    records: int = 0
    millis_behind: int | None = None
    quiet_since_s: float | None = None
    """When the processor was first given an empty read at the tip (None while reading)."""
    quiet_through_s: float = 0.0
    """When it was last given one: quiet for `quiet_through_s - quiet_since_s` by its own
    processing, which is what `stop_when_idle_ms` counts (the idle close ran in that time)."""
    ended: bool = False
    counters: EngineCounters = field(default_factory=EngineCounters)
    # Observability: read by streams.observe.metrics.
    engine: ShardEngine | None = None
    lease_takeovers: int = 0
    lease_losses: int = 0
    source: ShardHealth = field(init=False)
    processor: ShardHealth | None = None
    retry_at_s: float = 0.0

    def __post_init__(self) -> None:
        self.source = ShardHealth(self.shard_id)

    @property
    def healthy(self) -> bool:
        return self.source.healthy and (self.processor is None or self.processor.healthy)

    @property
    def error(self) -> str | None:
        if self.healthy:
            return None
        if not self.source.healthy:
            return self.source.last_error
        return self.processor.last_error if self.processor is not None else None


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
        renew_leases: LeaseTable | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream_name
        self._leases = leases
        self._engine_factory = engine_factory
        self._config = config
        self._monotonic = monotonic
        self._checkpointer = LeaseCheckpointer(
            leases,
            renew_table=renew_leases or leases.with_backoff(Backoff(cap_ms=1_000, max_attempts=4)),
            failover_ms=config.failover_ms,
            monotonic=monotonic,
        )
        self._backoff = Backoff(base_ms=config.retry_base_ms, cap_ms=config.retry_cap_ms)
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._seen: dict[str, tuple[str | None, int, float]] = {}
        self._shards: dict[str, ShardInfo] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.sync = ShardHealth("(shard sync)")
        """Health of the runner's own loop: ListShards, lease scan and takes."""

    def stop(self) -> None:
        self._stop.set()

    def held_shards(self) -> list[str]:
        """The shards whose leases this runner holds now (safe from any thread)."""
        return self._checkpointer.held_ids()

    def unhealthy(self) -> list[str]:
        """Shards (and the shard sync) failing now: the worker exits non-zero if any is left
        when it stops."""
        bad = [f"{p.shard_id}: {p.error}" for p in self.progress.values() if not p.healthy]
        if not self.sync.healthy:
            bad.append(f"shard sync: {self.sync.last_error}")
        return bad

    @property
    def errors(self) -> list[str]:
        return self.unhealthy()

    def run(self) -> None:
        """Block until stopped; then shut every shard down gracefully (flush, checkpoint)."""
        renewer = threading.Thread(target=self._renew_leases, name="lease-renewer", daemon=True)
        renewer.start()
        shards: dict[str, ShardInfo] = {}
        next_sync_s = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if self._monotonic() >= next_sync_s:
                        shards = self._sync_shards()
                        next_sync_s = self._monotonic() + self._config.shard_sync_interval_ms / 1000
                    leases = self._leases.list()
                    self._start_ready_shards(shards, leases)
                except _TRANSIENT as exc:
                    if is_misconfigured(exc):
                        raise  # a missing stream or table, refused credentials: not transient
                    self.sync.failed(exc, _ms(self._monotonic()), log)
                    self._stop.wait(self._pause_s(self.sync))
                    continue
                self.sync.succeeded(_ms(self._monotonic()))
                if self._all_quiet(shards, leases):
                    log.info("every shard is caught up and quiet: stopping")
                    break
                self._stop.wait(0.2)
        finally:
            self._stop.set()
            for thread in list(self._threads.values()):
                thread.join()
            renewer.join()

    # -- scheduling ----------------------------------------------------------------------

    def _sync_shards(self) -> dict[str, ShardInfo]:
        config = self._config
        shards = {s.shard_id: s for s in list_shards(self._kinesis, self._stream)}
        self._shards = shards
        for shard in shards.values():
            self._leases.create_if_missing(
                shard.shard_id,
                shard.parent_ids,
                (shard.starting_hash_key, shard.ending_hash_key),
                config.initial_position,
                config.at_timestamp_ms if config.initial_position == AT_TIMESTAMP else None,
            )
        return shards

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
            if progress is not None and self._monotonic() < progress.retry_at_s:
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
            if held.finished:
                # The listing was read before the shard's end was saved (the save may run
                # after its thread is gone): the shard is done, nothing is left to start.
                continue
            self._checkpointer.hold(held)
            progress = self.progress.setdefault(shard_id, ShardProgress(shard_id))
            if lease.owner not in (None, self._config.worker_id):
                progress.lease_takeovers += 1
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
        for shard_id in shards:
            lease = leases.get(shard_id)
            if lease is None:
                return False
            if lease.finished:
                continue
            progress = self.progress.get(shard_id)
            if progress is None or not progress.healthy or progress.quiet_since_s is None:
                return False
            if progress.processor is not None and not progress.processor.settled:
                return False  # outputs or state not yet checkpointed
            # Quiet as the processor saw it, not as this thread's clock says: a shard thread
            # held up (a read backing off) has not yet had the idle close it is due.
            if progress.quiet_through_s - progress.quiet_since_s < quiet_ms / 1000:
                return False
        return True

    def _renew_leases(self) -> None:
        """The renewal thread: renews every held lease each interval, whatever the shard
        threads are doing (a sink call backing off for 16 s does not cost the lease)."""
        interval_s = self._config.lease_renew_interval_ms / 1000
        while not self._stop.wait(interval_s):
            for shard_id in self._checkpointer.renew_all():
                log.warning("shard %s: lease lost; its thread stops writing", shard_id)

    def _pause_s(self, health: ShardHealth) -> float:
        return self._backoff.delay_ms(min(health.consecutive_failures - 1, 30)) / 1000

    # -- one shard -----------------------------------------------------------------------

    def _run_shard(self, shard: ShardInfo, lease: Lease, parent_ids: tuple[str, ...]) -> None:
        shard_id = shard.shard_id
        progress = self.progress[shard_id]
        progress.quiet_since_s = None  # caught up only once this engine has read to the tip
        processor: ShardProcessor | None = None
        try:
            processor = self._engine_factory(shard_id, self._checkpointer)
            progress.processor = processor.health
            progress.engine = processor if isinstance(processor, ShardEngine) else None
            counters = getattr(processor, "counters", None)
            if isinstance(counters, EngineCounters):
                progress.counters = counters
            lineage = hash_range_lineage(parent_ids, shard.hash_range)
            self._step(progress, lambda: processor.initialize(lease.checkpoint, lineage))
            reader = ShardReader(
                self._kinesis,
                self._stream,
                shard_id,
                lease.checkpoint,
                at_timestamp_ms=lease.at_timestamp_ms or self._config.at_timestamp_ms,
                ending_sequence_number=lambda: self._ending_sequence_number(shard_id),
                max_calls_per_s=self._config.max_calls_per_s,
            )
            self._consume(processor, reader, progress)
        except LeaseLostError as exc:
            log.warning("shard %s: lease lost: %s", shard_id, exc)
            progress.lease_losses += 1
            if processor is not None:
                processor.lease_lost()
            self._checkpointer.forget(shard_id)
            return
        except _StoppedError:
            pass
        except Exception as exc:
            # A bug, not a fault of AWS: the shard restarts from its checkpoint, with backoff.
            log.exception("shard %s failed; it restarts from its checkpoint", shard_id)
            progress.source.failed(exc, _ms(self._monotonic()), log)
            progress.retry_at_s = self._monotonic() + self._pause_s(progress.source)
            if processor is not None:
                processor.lease_lost()
        if not progress.ended:
            self._release(shard_id)

    def _step(self, progress: ShardProgress, step: Callable[[], T]) -> T:
        """Run `step` until it succeeds, with backoff, counting failures in `progress.source`."""
        while True:
            self._check(progress.shard_id)
            try:
                result = step()
            except LeaseLostError:
                raise
            except _TRANSIENT as exc:
                progress.source.failed(exc, _ms(self._monotonic()), log)
                self._stop.wait(self._pause_s(progress.source))
                continue
            progress.source.succeeded(_ms(self._monotonic()))
            return result

    def _check(self, shard_id: str) -> None:
        if self._stop.is_set():
            raise _StoppedError
        if not self._checkpointer.holds(shard_id):
            raise LeaseLostError(f"lease {shard_id} is no longer held")

    def _consume(
        self, processor: ShardProcessor, reader: ShardReader, progress: ShardProgress
    ) -> None:
        config = self._config
        shard_id = progress.shard_id
        pending: Batch | None = None  # a batch the processor refused (buffers full)
        try:
            while True:
                self._check(shard_id)
                batch = pending
                if batch is None:
                    batch = self._step(progress, reader.read)
                processed_at_s = self._monotonic()
                try:
                    processor.process_records(batch.records, batch.millis_behind_latest)
                except ShardBlockedError as exc:
                    pending = batch  # stop reading this shard until its checkpoint succeeds
                    self._stop.wait(max(exc.retry_in_ms, 100) / 1000)
                    continue
                pending = None
                progress.millis_behind = batch.millis_behind_latest
                if batch.records:
                    progress.records += len(batch.records)
                    progress.quiet_since_s = None
                if batch.shard_ended:
                    self._step(progress, processor.shard_ended)
                    self._checkpointer.forget(shard_id)
                    progress.ended = True
                    return
                if not batch.records and batch.millis_behind_latest == 0:
                    if progress.quiet_since_s is None:
                        progress.quiet_since_s = processed_at_s
                    progress.quiet_through_s = processed_at_s
                    self._stop.wait(config.idle_poll_interval_ms / 1000)
        except _StoppedError:
            pass
        try:
            processor.shutdown_requested()
        except LeaseLostError:
            raise
        except Exception as exc:
            progress.source.failed(exc, _ms(self._monotonic()), log, status="failing")

    def _ending_sequence_number(self, shard_id: str) -> int | None:
        shard = self._shards.get(shard_id)
        return shard.ending_sequence_number if shard is not None else None

    def _release(self, shard_id: str) -> None:
        lease = self._checkpointer.forget(shard_id)
        if lease is not None:
            try:
                self._leases.release(lease)
            except LuxflowError as exc:
                log.warning("shard %s: could not release lease: %s", shard_id, exc)


class _StoppedError(Exception):
    """The runner is stopping: leave the shard's loop (not an error)."""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
