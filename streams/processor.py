"""The shard-processor lifecycle, stated once: what both runners drive and `ShardEngine` does;
what a processor reports (`ShardHealth`, `EngineCounters`) and how it is configured
(`EngineConfig`).

This is the KCL's `ShardRecordProcessor` contract in Python. A runner (the local polling
runner, or the KCL MultiLangDaemon bridge) builds one processor per leased shard with an
`EngineFactory` and calls, from one thread:

    initialize(start, lineage)      once, before anything else
    process_records(records, ...)   any number of times, records in shard order
    then exactly one of:
      lease_lost()                  another worker owns the shard: no checkpoint, ever again
      shard_ended()                 the shard is closed: the processor checkpoints SHARD_END
      shutdown_requested()          the worker stops: the processor checkpoints what it has

Nothing is shared between processors, so a shard can move between workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.records import LeaseFence, Position, Record
from tables.snapshot import FORMAT_VERSION


@dataclass(frozen=True)
class Lineage:
    """Where a new shard's state comes from: its parents (after a split or merge) and the
    partition keys of their state it keeps (its own hash range)."""

    parent_shard_ids: tuple[str, ...] = ()
    keep: Callable[[str], bool] = lambda _pk: True


NO_LINEAGE = Lineage()
"""A shard that starts from its own state only."""


@dataclass
class ShardHealth:
    """How one shard is doing, for logs, metrics and the worker's exit status.

    Written by the thread that drives the shard, read by anyone (each field is replaced
    whole, so a reader sees a consistent value per field). `status` is one of "starting",
    "ok", "failing" (something keeps failing; it is retried with backoff), "blocked" (buffers
    full, no records taken until a checkpoint succeeds), "lease_lost", "ended", "stopped".
    """

    shard_id: str
    status: str = "starting"
    last_checkpoint_ms: int | None = None
    checkpoints: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None
    settled: bool = True
    """Everything processed so far is checkpointed (nothing buffered, no state unsaved)."""
    _last_logged_ms: int | None = None

    @property
    def healthy(self) -> bool:
        """False while something fails (until the next success)."""
        return self.consecutive_failures == 0 and self.status not in ("failing", "blocked")

    def succeeded(self, now_ms: int, *, checkpoint: bool = False) -> None:
        """The step that failed before went through."""
        if self.consecutive_failures:
            logging.getLogger(__name__).warning(
                "shard %s: recovered after %d failure(s)", self.shard_id, self.consecutive_failures
            )
        self.consecutive_failures = 0
        if self.status in ("starting", "failing", "blocked"):
            self.status = "ok"
        if checkpoint:
            self.last_checkpoint_ms = now_ms
            self.checkpoints += 1

    def failed(
        self,
        error: BaseException | str,
        now_ms: int,
        log: logging.Logger,
        *,
        status: str = "failing",
        log_interval_ms: int = 30_000,
    ) -> None:
        """Count a failure and log it at ERROR: the first of a run of failures, then at most
        once per `log_interval_ms`, so a shard failing every second does not flood the log."""
        self.consecutive_failures += 1
        self.status = status
        if isinstance(error, str):
            self.last_error = error
        else:
            self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_ms = now_ms
        last = self._last_logged_ms
        if self.consecutive_failures == 1 or last is None or now_ms - last >= log_interval_ms:
            self._last_logged_ms = now_ms
            log.error(
                "shard %s %s (%d consecutive failure(s)): %s",
                self.shard_id,
                status,
                self.consecutive_failures,
                self.last_error,
            )


@dataclass
class EngineCounters:
    """What one shard's engine has done since it started."""

    records: int = 0
    bad_records: int = 0
    late_records: int = 0
    agent_errors: int = 0
    internal_errors: int = 0
    outputs: int = 0
    skipped_already_applied: int = 0
    checkpoints: int = 0
    failed_checkpoints: int = 0
    # Observability: read by streams.observe.metrics, never reset.
    checkpoint_us: int = 0
    """Time spent in checkpoints that were written (flush + snapshot + checkpoint), in us."""
    last_checkpoint_ms: int = 0
    """Wall time of the last checkpoint written (0: none yet)."""
    prompt_flushes: int = 0
    """Flushes of the sinks made at once for prompt outputs (alarms), between checkpoints."""
    sink_errors: int = 0
    """Flushes that failed with `SinkError` (each aborted a checkpoint)."""
    state_keys: int = 0
    """Keys held by the tables (windowed: (key, window) pairs) at the last snapshot."""
    state_bytes: int = 0
    """Size of the last whole state snapshot (a base; deltas are counted in snapshot_bytes)."""
    snapshot_bytes: int = 0
    """Bytes of every state snapshot saved (bases and deltas)."""

    @property
    def dead_lettered(self) -> int:
        return self.bad_records + self.late_records + self.agent_errors + self.internal_errors


@dataclass(frozen=True)
class EngineConfig:
    checkpoint_interval_ms: int = 5_000
    idle_timeout_ms: int = 60_000
    bounded: bool = False
    """A run that ends once its input is read (`luxflow worker --stop-when-idle-s`, the demo,
    a replay run to its end): quiet at the tip is the end of the input, so the idle rule moves
    the event clock to processing time and every window closes before the run stops. A
    continuous worker (False) keeps the shard's lag instead."""
    max_buffered_outputs: int = 50_000
    """Outputs routed to the sinks and not yet flushed; over this the engine takes no new
    records until a checkpoint succeeds (memory stays flat while a store is down)."""
    retry_base_ms: int = 1_000
    retry_cap_ms: int = 60_000
    """A failed checkpoint is retried after a full-jitter pause of at most
    min(retry_cap_ms, retry_base_ms * 2**failures)."""
    save_in_background: bool = False
    snapshot_format: int = FORMAT_VERSION
    """What the shard's state snapshots are written as (`tables.snapshot.SNAPSHOT_FORMATS`)."""
    """The checkpoint's state save and position commit run on a helper thread while the
    shard goes on (`streams.checkpoint`), so no record waits behind them. Only where the
    `StateStore` and the `Checkpointer` may be called from another thread: the local
    runner's lease table, not the KCL daemon's checkpoint, which answers on its own pipe."""


class Checkpointer(Protocol):
    """Records how far a shard has been processed, in the KCL lease table.

    Contract:
    - `checkpoint(shard_id, position)` means every record at or before `position` has been
      processed and everything it produced is durable. The checkpoint step
      (`streams.checkpoint`) calls it only after its sinks flushed and its state snapshot was
      saved.
    - `position` is a `Position`, or the string "SHARD_END" once the shard is finished; after
      SHARD_END the children of the shard may start.
    - Raises `LeaseLostError` when another worker owns the lease now (the caller must stop the
      shard without further checkpoints), `CheckpointError` for anything retries did not fix.
    - `fence(shard_id)` is the lease this worker holds for the shard now, for writes only the
      owner may make (the state snapshot save); None when the runner does not know it. Raises
      `LeaseLostError` when the lease is known to be lost, without any call to AWS: the step
      asks before it writes anything.
    """

    def checkpoint(self, shard_id: str, position: Position | str) -> None: ...

    def fence(self, shard_id: str) -> LeaseFence | None: ...


class ShardProcessor(Protocol):
    """One shard's processor. The runner calls these methods from one thread, in the order of
    the module docstring. `health` is readable from any thread."""

    shard_id: str
    health: ShardHealth

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        """Called once, before any record: records will begin after `start` (a `Position`,
        or a sentinel such as TRIM_HORIZON). Loads the shard's state, or on a split or merge
        its parents' final state filtered by `lineage` (default: the factory's). Raises a
        `LuxflowError` if the state cannot be loaded; the runner then retries later, with
        backoff, without processing anything."""

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        """Process a batch (possibly empty: time passes, windows close on idle) and write a
        checkpoint when one is due, after everything before it is durable.

        A record that cannot be processed (bad bytes, an agent or callback raising) is
        dead-lettered and the shard goes on; a failed periodic checkpoint is retried later with
        backoff (see `health`). Raises `ShardBlockedError`, having taken none of `records`,
        when its buffers are over their bound and the checkpoint that would empty them failed:
        the runner must stop reading this shard and hand the same records again after a pause.
        Raises `LeaseLostError` when the checkpointer reports the lease gone; the processor has
        then already done what `lease_lost` does."""

    def lease_lost(self) -> None:
        """Another worker owns the shard: drop buffers and state. After this the processor
        never calls its checkpointer or writes state again; later calls do nothing (a
        checkpoint raises `LeaseLostError`)."""

    def shard_ended(self) -> None:
        """The shard is closed (split or merge) and every record was processed: flush, save the
        final state for the children, and checkpoint SHARD_END (children start only after it).
        Raises if that failed; the runner must not treat the shard as finished then."""

    def shutdown_requested(self) -> None:
        """The worker is stopping and still holds the lease: flush, save and checkpoint what
        was processed, so the next owner resumes there. Raises if that failed (the next owner
        resumes from the last checkpoint; outputs are idempotent, nothing is lost)."""


EngineFactory = Callable[[str, Checkpointer], ShardProcessor]
"""Builds the processor of one shard: (shard id, the runner's checkpointer) -> processor."""
