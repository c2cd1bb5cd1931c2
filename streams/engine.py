"""The per-shard engine: decode -> agents -> tables -> sinks -> checkpoint step.

`ShardEngine` is the one `ShardProcessor` (its lifecycle and contract: `streams.processor`).
Besides the protocol it has the building blocks tests and benchmarks drive directly:
`start`, `process`, `tick`, `checkpoint_due` and `checkpoint` (flush sinks -> save the state
snapshot -> write the checkpoint).

Poison isolation: whatever one record does (bad bytes, a decoder or an agent raising any
exception, a table callback raising), that record is dead-lettered with a stable reason and the
shard goes on. Back-pressure: outputs not yet flushed are bounded; over the bound the engine
takes no new records until a checkpoint empties its buffers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from core.clock import wall_clock_ms
from core.errors import AgentError, LeaseLostError, ShardBlockedError, SinkError
from core.event import Event
from core.records import SHARD_END, DeadLetter, LeaseFence, Position, Record
from core.retry import Backoff
from sinks.base import Sink
from streams.agent import AgentInstance
from streams.app import App
from streams.checkpoints import Checkpointer
from streams.engine_parts import (
    NO_LINEAGE,
    EngineConfig,
    EngineCounters,
    agent_reason,
    internal_reason,
)
from streams.processor import Lineage, ShardHealth
from tables.store import Snapshot, StateStore
from tables.table import ShardState

log = logging.getLogger(__name__)

__all__ = [
    "EngineConfig",
    "EngineCounters",
    "Lineage",
    "ShardEngine",
    "ShardEngineFactory",
    "internal_reason",
]


class ShardEngine:
    """Processes one shard. Not thread-safe: one thread (or process) drives one engine;
    `health` may be read from any thread."""

    def __init__(
        self,
        app: App,
        shard_id: str,
        *,
        sinks: Sequence[Sink],
        dead_letter: Sink,
        state_store: StateStore,
        checkpointer: Checkpointer,
        config: EngineConfig | None = None,
        now_ms: Callable[[], int] = wall_clock_ms,
        lineage: Lineage = NO_LINEAGE,
    ) -> None:
        config = config or EngineConfig()
        self.app = app
        self._lineage = lineage
        self.shard_id = shard_id
        self._decode = app.decoder
        self._sinks = tuple(sinks)
        self._dead_letter = dead_letter
        self._store = state_store
        self._checkpointer = checkpointer
        self._config = config
        self._now_ms = now_ms
        self._agents: list[AgentInstance[object]] = [a.instance() for a in app.agents]
        self.state = ShardState(app.tables, shard_id, now_ms, config.idle_timeout_ms)
        self.counters = EngineCounters()
        self.health = ShardHealth(shard_id)
        self._applied_until: Position | None = None  # records at or below are in the state
        self._last_position: Position | None = None  # last record handled
        self._last_checkpoint_ms = now_ms()
        self._outputs: list[object] = []
        self._dirty = False  # records or outputs since the last checkpoint
        self._closed = False  # a window closed with outputs since the last checkpoint
        self._unflushed = 0  # outputs routed to the sinks since their last successful flush
        self._retry = Backoff(base_ms=config.retry_base_ms, cap_ms=config.retry_cap_ms)
        self._retry_at_ms = 0
        self._lost = False
        self._callback_errors: set[str] = set()
        self.fence: LeaseFence | None = None
        """The lease fence of the checkpoint in progress (None: not known to this runner), for
        the state store's fenced save."""

    # -- ShardProcessor --------------------------------------------------------------------

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        applied = self.start(lineage)
        self.health.status = "ok"
        log.info("shard %s: starting after %s (state at %s)", self.shard_id, start, applied)

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        if self._lost:
            return
        if self._over_bound() and not self._try_checkpoint():
            self.health.status = "blocked"
            raise ShardBlockedError(
                f"shard {self.shard_id}: {self._unflushed} outputs not flushed "
                f"(bound {self._config.max_buffered_outputs}); last error: "
                f"{self.health.last_error}",
                max(0, self._retry_at_ms - self._now_ms()),
            )
        if records:
            self.process(records)
        else:
            if millis_behind_latest:
                # An empty read behind the tip is not idleness: the data is still coming.
                self.state.behind()
            self.tick()
        if self.checkpoint_due() or self._over_bound():
            self._try_checkpoint()
        self.health.settled = not self._dirty

    def lease_lost(self) -> None:
        """See `ShardProcessor.lease_lost`: drop buffers, never checkpoint again."""
        self._lost = True
        self.health.status = "lease_lost"
        for sink in self._sinks:
            sink.discard()
        self._dead_letter.discard()
        self._outputs.clear()
        self._unflushed = 0
        self._dirty = self._closed = False

    def shard_ended(self) -> None:
        """Agents see their stream end; open windows are not emitted here but carried to the
        children in the final snapshot."""
        if self._lost:
            return
        self.state.activate()
        for agent in self._agents:
            try:
                agent.close(self._outputs)
            except AgentError as exc:
                log.warning("shard %s: %s", self.shard_id, exc)
        self._route(self._outputs)
        self._take_fence()
        self._flush()
        self._save_state(self._last_position or self._applied_until, final=True)
        self._checkpoint_at(SHARD_END)
        self.health.status = "ended"

    def shutdown_requested(self) -> None:
        if self._lost:
            return
        if self._dirty:
            self.checkpoint()
        self.health.status = "stopped"

    # -- building blocks -------------------------------------------------------------------

    def start(self, lineage: Lineage | None = None) -> Position | None:
        """Load this shard's snapshot, or on a split or merge its parents' final snapshots
        filtered by the lineage's `keep(partition_key)` (the lineage given here, else the one
        given at construction). Returns the position the state already includes."""
        lineage = lineage or self._lineage
        own = self._store.load(self.shard_id)
        if own is not None:
            self.state.restore([own.blobs], lambda _pk: True)
            self._applied_until = own.position
            log.info("shard %s: state restored at %s", self.shard_id, own.position)
            return own.position
        chains = []
        for parent in lineage.parent_shard_ids:
            snap = self._store.load(parent)
            if snap is not None:
                chains.append(snap.blobs)
        if chains:
            self.state.restore(chains, lineage.keep)
            log.info(
                "shard %s: state taken from parents %s", self.shard_id, lineage.parent_shard_ids
            )
        return None

    def process(self, records: Sequence[Record]) -> None:
        """Run every record through decode, agents and tables; outputs go to the sinks. A
        record that raises anywhere on the way is dead-lettered; the next one goes on."""
        state = self.state
        state.activate()
        decode = self._decode
        outputs = self._outputs
        agents = self._agents
        counters = self.counters
        applied_until = self._applied_until
        last: Record | None = None
        for record in records:
            if applied_until is not None:
                if record.position <= applied_until:
                    counters.skipped_already_applied += 1
                    continue
                applied_until = self._applied_until = None  # past the snapshot: never again
            last = record
            counters.records += 1
            try:
                value = decode(record.data, record.arrival_ms)
            except ValueError as exc:
                counters.bad_records += 1
                self._dead_letter.write(DeadLetter.of(record, "decode", str(exc)))
                continue
            except MemoryError:
                raise
            except Exception as exc:
                counters.bad_records += 1
                self._dead_letter.write(DeadLetter.of(record, "decode", internal_reason(exc)))
                continue
            try:
                event = Event.of(record, value)
                state.begin(event)
                for agent in agents:
                    try:
                        agent.feed(value, outputs, event)
                    except AgentError as exc:
                        counters.agent_errors += 1
                        log.warning("shard %s: %s", self.shard_id, exc)
                        self._dead_letter.write(DeadLetter.of(record, "agent", agent_reason(exc)))
                if state.take_late():
                    counters.late_records += 1
                    self._dead_letter.write(DeadLetter.of(record, "late", "late"))
                if outputs:
                    self._route(outputs)
            except MemoryError:
                raise
            except Exception as exc:
                outputs.clear()
                counters.internal_errors += 1
                log.warning("shard %s: record %s: %r", self.shard_id, record.position, exc)
                self._dead_letter.write(DeadLetter.of(record, "engine", internal_reason(exc)))
        if last is not None:
            self._last_position = last.position
            self._dirty = True
        self._advance()

    def tick(self) -> None:
        """Let time pass without records: `take()` deadlines and idle window closing."""
        now_ms = self._now_ms()
        self.state.activate()
        for agent in self._agents:
            try:
                agent.tick(now_ms, self._outputs)
            except AgentError as exc:
                self.counters.agent_errors += 1
                log.warning("shard %s: %s", self.shard_id, exc)
        self._route(self._outputs)
        self._advance()

    def checkpoint_due(self) -> bool:
        """True when something happened since the last checkpoint and the interval passed,
        or a window closed with outputs (reports are written as soon as their window closes,
        not up to an interval later: one more checkpoint per window end); after a failed
        checkpoint: once its retry pause passed."""
        if not self._dirty:
            return False
        now_ms = self._now_ms()
        if self.health.consecutive_failures:
            return now_ms >= self._retry_at_ms
        interval_ms = self._config.checkpoint_interval_ms
        return self._closed or now_ms - self._last_checkpoint_ms >= interval_ms

    def checkpoint(self, position: Position | None = None) -> None:
        """Flush sinks -> save the state snapshot -> write the checkpoint, in that order.

        If any step raises, the later steps do not run: a checkpoint is never written for
        outputs or state that are not durable. After the lease was lost it raises
        `LeaseLostError` and writes nothing.
        """
        started_ns = time.monotonic_ns()
        position = position or self._last_position or self._applied_until
        self._take_fence()
        self._flush()
        self._save_state(position, final=False)
        if position is not None:
            self._checkpoint_at(position)
            self.counters.last_checkpoint_ms = self._now_ms()
            self.counters.checkpoint_us += (time.monotonic_ns() - started_ns) // 1000
        self._dirty = self._closed = False
        self.health.settled = True
        self._last_checkpoint_ms = self._now_ms()
        self.health.succeeded(self._last_checkpoint_ms, checkpoint=True)

    # -- observability (read from another thread: plain reads only) ----------------------

    @property
    def pending(self) -> bool:
        """True when records or outputs since the last checkpoint wait to be checkpointed."""
        return self._dirty

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The output sinks, then the dead-letter sink."""
        return (*self._sinks, self._dead_letter)

    # -- internals -------------------------------------------------------------------------

    def _over_bound(self) -> bool:
        return self._unflushed > self._config.max_buffered_outputs

    def _try_checkpoint(self) -> bool:
        """A checkpoint now, unless a failed one's retry pause has not passed. A failure is
        counted in `health` (logged at ERROR, rate-limited) and retried after a capped
        exponential pause with full jitter. `LeaseLostError` propagates."""
        now_ms = self._now_ms()
        if self.health.consecutive_failures and now_ms < self._retry_at_ms:
            return False
        try:
            self.checkpoint()
        except LeaseLostError:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            self.counters.failed_checkpoints += 1
            status = "blocked" if self._over_bound() else "failing"
            self.health.failed(exc, now_ms, log, status=status)
            pause_ms = int(self._retry.delay_ms(self.health.consecutive_failures - 1))
            self._retry_at_ms = now_ms + pause_ms
            return False
        return True

    def _take_fence(self) -> None:
        """Before anything is written: is the lease still ours? (no AWS call)."""
        if self._lost:
            raise LeaseLostError(f"shard {self.shard_id}: the lease was lost")
        try:
            self.fence = self._checkpointer.fence(self.shard_id)
        except LeaseLostError:
            self.lease_lost()
            raise

    def _checkpoint_at(self, position: Position | str) -> None:
        try:
            self._checkpointer.checkpoint(self.shard_id, position)
        except LeaseLostError:
            self.lease_lost()
            raise
        self.counters.checkpoints += 1

    def _advance(self) -> None:
        """Close what the event clock has passed, then run the app's advance callbacks. A
        callback that raises is dead-lettered (origin "callback") and the shard goes on."""
        try:
            closed = self.state.advance()
            self._closed = self._closed or bool(closed)
            self._route(closed)
            clock_ms = self.state.event_clock_ms()
            if clock_ms is None or not self.app.advance_callbacks:
                return
            for callback in self.app.advance_callbacks:
                self._outputs.extend(callback(clock_ms))
            self._route(self._outputs)
        except MemoryError:
            raise
        except Exception as exc:
            self._outputs.clear()
            self.counters.internal_errors += 1
            reason = internal_reason(exc)
            # A window whose callback raises stays open and raises again at the next advance:
            # ERROR once per distinct reason, then debug (the dead letter is written once).
            level = logging.DEBUG if reason in self._callback_errors else logging.ERROR
            self._callback_errors.add(reason)
            log.log(
                level, "shard %s: a table or advance callback raised: %s", self.shard_id, reason
            )
            at = self._last_position or Position(0)
            self._dead_letter.write(
                DeadLetter(
                    self.shard_id,
                    at.sequence_number,
                    at.sub_sequence_number,
                    "",
                    "callback",
                    reason,
                    b"",
                    self._now_ms(),
                    detail_key=reason.split(":", 2)[1],
                )
            )

    def _route(self, outputs: list[object]) -> None:
        if not outputs:
            return
        self._dirty = True
        self.counters.outputs += len(outputs)
        self._unflushed += len(outputs)
        for sink in self._sinks:
            write = sink.write
            for item in outputs:
                write(item)
        outputs.clear()

    def _flush(self) -> None:
        try:
            for sink in self._sinks:
                sink.flush()
            # Last: sinks may dead-letter what their store rejected while flushing.
            self._dead_letter.flush()
        except SinkError:
            self.counters.sink_errors += 1
            raise
        self._unflushed = 0

    def _save_state(self, position: Position | None, *, final: bool) -> None:
        """Save what changed since the last saved snapshot (the final one: a whole base, the
        one split and merge children start from), fenced by the lease when the runner knows
        it. The state counts as saved only once the store returned: a failed save leaves it
        changed, so the next checkpoint saves it."""
        pending = self.state.snapshot(full=final)
        if pending is None:
            return
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
        self.state.saved(pending)
        self.counters.snapshot_bytes += len(pending.data)
        if not pending.delta:
            self.counters.state_bytes = len(pending.data)
        self.counters.state_keys = self.state.key_count()


ShardEngineFactory = Callable[[str, Checkpointer], ShardEngine]
"""An `EngineFactory` whose processors are `ShardEngine`s (metrics read their counters)."""
