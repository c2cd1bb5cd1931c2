"""The checkpoint step of a shard processor (`ShardCheckpoint`): what must be durable before a
runner's `Checkpointer` may record a position.

The step, in order, each step only after the one before it succeeded:

    1. fence       is the lease still ours? (asked of the runner, no AWS call)
    2. flush       every sink writes what it buffered; the dead-letter sink last, because
                   sinks dead-letter what their store rejected while flushing
    3. save        the state snapshot that includes the records, fenced by the lease
    4. commit      the position in the lease table

Failure rule: if any step raises, the later steps do not run, so a position is never recorded
for outputs or state that are not durable. A failed step is retried by `try_commit()` after a
capped exponential pause with full jitter; what was buffered stays buffered and what was not
saved stays unsaved, so the retry writes it. `LeaseLostError` is not retried: the step drops
its buffers and never writes again.

When: `due()` once something happened since the last checkpoint and either the interval
passed or a window closed with outputs (reports are written with the batch that closed their
window, not an interval later); after a failure, once its pause has passed.

Prompt outputs (the app's alarms, `App.prompt`) do not wait for the checkpoint: after the
batch that made them, `flush_prompt()` runs steps 1 and 2 only. The position and the state
still wait for their cadence; a crash before the next checkpoint processes the batch again
and writes the same items again (their keys are deterministic).

Back-pressure: outputs written to the sinks and not yet flushed are counted; over
`max_buffered_outputs` the engine takes no new records until a checkpoint empties them.

Saving in the background (`EngineConfig.save_in_background`): steps 1 and 2 and the
snapshot's encoding run on the shard's thread, as they must (the sinks and the state are the
shard's); steps 3 and 4 (the state table's writes and the lease's) run on a helper thread
while the shard reads and processes the next batches, so an alarm in them is not held behind
the save. One save at a time: a checkpoint due meanwhile waits for it (alarms are still
flushed with their batches). `collect()` takes the save's outcome on the shard's thread: the
state counts as saved and the failure rule above holds as before, the position committed
being the one whose outputs were flushed and whose state was encoded before the helper
started. A crash while it runs is a crash before the checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from core.errors import LeaseLostError, SinkError
from core.records import SHARD_END, DeadLetter, LeaseFence, Position
from core.retry import Backoff
from sinks.base import Sink
from streams.processor import Checkpointer, EngineConfig, EngineCounters, ShardHealth
from tables.shard import ShardState
from tables.spec import PendingSnapshot
from tables.store import Snapshot, StateStore

log = logging.getLogger(__name__)


class ShardCheckpoint:
    """The checkpoint step of one shard (the steps and rules: the module docstring).

    It owns the shard's output path: `write()` hands outputs to the sinks, `dead_letter()`
    to the dead-letter sink, `processed()` tells it how far the records go. Driven by one
    thread, the shard's.
    """

    def __init__(
        self,
        shard_id: str,
        *,
        state: ShardState,
        sinks: Sequence[Sink],
        prompt_types: tuple[type, ...] = (),
        dead_letter: Sink,
        store: StateStore,
        checkpointer: Checkpointer,
        config: EngineConfig,
        counters: EngineCounters,
        health: ShardHealth,
        now_ms: Callable[[], int],
    ) -> None:
        self.shard_id = shard_id
        self._state = state
        self.sinks = tuple(sinks)
        self.dead_letters = dead_letter
        self._store = store
        self._checkpointer = checkpointer
        self._config = config
        self._counters = counters
        self._health = health
        self._now_ms = now_ms
        self._retry = Backoff(base_ms=config.retry_base_ms, cap_ms=config.retry_cap_ms)
        self._retry_at_ms = 0
        self._last_ms = now_ms()
        self.position: Position | None = None
        """The last record handled, or the position the restored state includes."""
        self.pending = False
        """Records or outputs since the last checkpoint (nothing is durable yet)."""
        self._window_closed = False
        self._unflushed = 0
        self._prompt_types = prompt_types
        self._prompt_pending = False
        self.lost = False
        self.fence: LeaseFence | None = None
        """The lease fence of the checkpoint in progress (None: not known to this runner)."""
        self._saving: _Saving | None = None

    # -- the output path -------------------------------------------------------------------

    def write(self, outputs: list[object]) -> None:
        """Hand `outputs` to every sink (buffered until the flush step) and clear the list."""
        if not outputs:
            return
        self.pending = True
        self._counters.outputs += len(outputs)
        self._unflushed += len(outputs)
        if self._prompt_types and not self._prompt_pending:
            prompt = self._prompt_types
            self._prompt_pending = any(isinstance(item, prompt) for item in outputs)
        for sink in self.sinks:
            write = sink.write
            for item in outputs:
                write(item)
        outputs.clear()

    def dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.write(letter)

    def processed(self, position: Position, *, window_closed: bool = False) -> None:
        """Records up to `position` went through the agents and tables."""
        self.position = position
        self.pending = True
        self._window_closed = self._window_closed or window_closed

    def window_closed(self) -> None:
        """A window closed with outputs: a checkpoint is due with this batch."""
        self._window_closed = True
        self.pending = True

    # -- cadence ---------------------------------------------------------------------------

    def due(self) -> bool:
        if not self.pending:
            return False
        now_ms = self._now_ms()
        if self._health.consecutive_failures:
            return now_ms >= self._retry_at_ms
        return self._window_closed or now_ms - self._last_ms >= self._config.checkpoint_interval_ms

    def over_bound(self) -> bool:
        return self._unflushed > self._config.max_buffered_outputs

    @property
    def unflushed(self) -> int:
        """Outputs handed to the sinks since their last successful flush."""
        return self._unflushed

    @property
    def bound(self) -> int:
        return self._config.max_buffered_outputs

    def retry_in_ms(self) -> int:
        return max(0, self._retry_at_ms - self._now_ms())

    # -- the step --------------------------------------------------------------------------

    def commit(self, position: Position | None = None) -> None:
        """fence -> flush -> save -> commit `position` (default: the last record handled).
        Raises what a step raised; the later steps did not run."""
        self.collect(wait=True)
        started_ns = time.monotonic_ns()
        position = position or self.position
        self._take_fence()
        self._flush()
        self._save(position, final=False)
        if position is not None:
            self._commit_at(position)
            self._counters.last_checkpoint_ms = self._now_ms()
            self._counters.checkpoint_us += (time.monotonic_ns() - started_ns) // 1000
        self.pending = self._window_closed = False
        self._last_ms = self._now_ms()
        self._health.settled = True
        self._health.succeeded(self._last_ms, checkpoint=True)

    def try_commit(self) -> bool:
        """`commit()` now, unless a failed one's pause has not passed. A failure is counted in
        `health` (logged at ERROR, rate-limited) and retried after a capped exponential pause
        with full jitter. `LeaseLostError` propagates."""
        now_ms = self._now_ms()
        if self._health.consecutive_failures and now_ms < self._retry_at_ms:
            return False
        try:
            if self._saving is not None:
                # A save is under way: flush what cannot wait for it (alarms, full buffers).
                if self.over_bound():
                    self._take_fence()
                    self._flush()
                else:
                    self.flush_prompt()
                return not self.over_bound()
            if self._config.save_in_background:
                self._begin_save()
            else:
                self.commit()
        except (LeaseLostError, MemoryError):
            raise
        except Exception as exc:
            self._failed(exc, now_ms)
            return False
        return True

    def _failed(self, exc: Exception, now_ms: int) -> None:
        self._counters.failed_checkpoints += 1
        status = "blocked" if self.over_bound() else "failing"
        self._health.failed(exc, now_ms, log, status=status)
        pause_ms = int(self._retry.delay_ms(self._health.consecutive_failures - 1))
        self._retry_at_ms = now_ms + pause_ms

    @property
    def saving(self) -> bool:
        """A background save is under way (its outcome not yet collected)."""
        return self._saving is not None

    def _begin_save(self) -> None:
        """fence -> flush -> encode the snapshot here; save -> commit on the helper thread."""
        started_ns = time.monotonic_ns()
        position = self.position
        self._take_fence()
        self._flush()
        pending = self._state.snapshot(full=False)
        fence, saved_at_ms = self.fence, self._now_ms()

        def persist() -> None:
            if pending is not None:
                self._store.save(
                    self.shard_id,
                    Snapshot(
                        shard_id=self.shard_id,
                        position=position,
                        saved_at_ms=saved_at_ms,
                        data=pending.data,
                        final=False,
                        delta=pending.delta,
                    ),
                    fence=fence,
                )
            if position is not None:
                self._checkpointer.checkpoint(self.shard_id, position)

        self._saving = _Saving(f"save {self.shard_id}", persist, pending, position, started_ns)
        self.pending = self._window_closed = False
        self._last_ms = self._now_ms()

    def collect(self, *, wait: bool = False) -> None:
        """Take the outcome of the background save if it is over (`wait`: wait for it). A
        failed one is counted and retried after its pause (the records since the last
        checkpoint stay pending); `LeaseLostError` propagates, the shard's buffers dropped."""
        saving = self._saving
        if saving is None or not saving.over(wait):
            return
        self._saving = None
        error = saving.error
        if isinstance(error, LeaseLostError):
            self._lost_now()
            raise error
        if error is not None:
            self.pending = True
            self._failed(error, self._now_ms())
            return
        if saving.snapshot is not None:
            self._saved(saving.snapshot)
        counters = self._counters
        if saving.position is not None:
            counters.checkpoints += 1
            counters.last_checkpoint_ms = self._now_ms()
            counters.checkpoint_us += (time.monotonic_ns() - saving.started_ns) // 1000
        self._health.succeeded(self._now_ms(), checkpoint=True)

    def flush_prompt(self) -> None:
        """If prompt outputs were written since the last flush: fence -> flush now. A failed
        flush is counted and left to the checkpoint step (which flushes first and retries
        with backoff); `LeaseLostError` propagates."""
        if not self._prompt_pending or self._health.consecutive_failures:
            return
        self._take_fence()
        try:
            self._flush()
        except SinkError as exc:
            log.warning("shard %s: alarms wait for the checkpoint: %s", self.shard_id, exc)
            return
        self._prompt_pending = False
        self._counters.prompt_flushes += 1

    def commit_end(self) -> None:
        """The shard is closed: flush, save the whole state (the base its children start
        from) and commit SHARD_END."""
        self.collect(wait=True)
        self._take_fence()
        self._flush()
        self._save(self.position, final=True)
        self._commit_at(SHARD_END)

    def lose(self) -> None:
        """The lease is gone: drop every buffer; from now on nothing is written."""
        self.lost = True
        self._saving = None  # its outcome no longer matters: nothing is written after this
        for sink in (*self.sinks, self.dead_letters):
            sink.discard()
        self._unflushed = 0
        self._prompt_pending = False
        self.pending = self._window_closed = False

    # -- steps -----------------------------------------------------------------------------

    def _take_fence(self) -> None:
        if self.lost:
            raise LeaseLostError(f"shard {self.shard_id}: the lease was lost")
        try:
            self.fence = self._checkpointer.fence(self.shard_id)
        except LeaseLostError:
            self._lost_now()
            raise

    def _flush(self) -> None:
        try:
            for sink in self.sinks:
                sink.flush()
            self.dead_letters.flush()
        except SinkError:
            self._counters.sink_errors += 1
            raise
        self._unflushed = 0
        self._prompt_pending = False

    def _save(self, position: Position | None, *, final: bool) -> None:
        """Save what changed since the last saved snapshot (the final one: a whole base).
        The state counts as saved only once the store returned: a failed save leaves it
        changed, so the next checkpoint saves it."""
        state = self._state
        pending = state.snapshot(full=final)
        if pending is None:
            return
        try:
            self._store.save(
                self.shard_id,
                Snapshot(
                    shard_id=self.shard_id,
                    position=position,
                    saved_at_ms=self._now_ms(),
                    data=pending.data,
                    final=final,
                    delta=pending.delta,
                ),
                fence=self.fence,
            )
        except LeaseLostError:
            self._lost_now()
            raise
        self._saved(pending)

    def _saved(self, pending: PendingSnapshot) -> None:
        state = self._state
        state.saved(pending)
        counters = self._counters
        counters.snapshot_bytes += len(pending.data)
        if not pending.delta:
            counters.state_bytes = len(pending.data)
        counters.state_keys = state.key_count()

    def _commit_at(self, position: Position | str) -> None:
        try:
            self._checkpointer.checkpoint(self.shard_id, position)
        except LeaseLostError:
            self._lost_now()
            raise
        self._counters.checkpoints += 1

    def _lost_now(self) -> None:
        self.lose()
        self._health.status = "lease_lost"


class _Saving:
    """A background save: `run` on its own thread; `over(wait)` says whether it ended, and
    `error` is what it raised."""

    def __init__(
        self,
        name: str,
        run: Callable[[], None],
        snapshot: PendingSnapshot | None,
        position: Position | None,
        started_ns: int,
    ) -> None:
        self.snapshot = snapshot
        self.position = position
        self.started_ns = started_ns
        self.error: Exception | None = None
        self._run = run
        self._done = threading.Event()
        # A daemon: a worker that exits mid-save has crashed before the checkpoint, which
        # the replay from the last one covers.
        threading.Thread(target=self._target, name=name, daemon=True).start()

    def _target(self) -> None:
        try:
            self._run()
        except Exception as exc:  # anything: the shard's thread decides (collect)
            self.error = exc
        finally:
            self._done.set()

    def over(self, wait: bool) -> bool:
        if wait:
            self._done.wait()
        return self._done.is_set()
