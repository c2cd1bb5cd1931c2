"""The per-shard engine: decode -> agents -> tables -> sinks -> checkpoint step.

Both runners (the local polling runner and the KCL MultiLangDaemon bridge) drive one
`ShardEngine` per shard through the same lifecycle, so delivery semantics do not depend on
the runner:

    start()                     load the shard's state (or its parents' on a split/merge)
    process(records)            any number of times, records in shard order
    checkpoint(position)        flush sinks -> save state snapshot -> write checkpoint
    shard_ended()               end agents, flush, save final state, checkpoint SHARD_END
    shutdown_requested()        flush, save, checkpoint the last processed position
    lease_lost()                drop everything, never checkpoint

Nothing is shared between engines, so a shard can move between workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.clock import wall_clock_ms
from core.errors import AgentError, SinkError
from core.event import Event
from core.records import SHARD_END, DeadLetter, Position, Record
from sinks.base import Sink
from streams.agent import AgentInstance
from streams.app import App
from streams.checkpoints import Checkpointer
from tables.store import SaveFence, Snapshot, StateStore
from tables.table import ShardState

log = logging.getLogger(__name__)


@dataclass
class EngineCounters:
    """What one shard's engine has done since it started."""

    records: int = 0
    bad_records: int = 0
    late_records: int = 0
    agent_errors: int = 0
    outputs: int = 0
    skipped_already_applied: int = 0
    checkpoints: int = 0
    # Observability (issue 13): read by streams.metrics, never reset.
    checkpoint_us: int = 0
    """Time spent in checkpoints that were written (flush + snapshot + checkpoint), in us."""
    last_checkpoint_ms: int = 0
    """Wall time of the last checkpoint written (0: none yet)."""
    sink_errors: int = 0
    """Flushes that failed with `SinkError` (each aborted a checkpoint)."""
    state_keys: int = 0
    """Keys held by the tables (windowed: (key, window) pairs) at the last snapshot."""
    state_bytes: int = 0
    """Size of the last state snapshot."""
    snapshot_bytes: int = 0
    """Bytes of every state snapshot saved."""


@dataclass(frozen=True)
class EngineConfig:
    checkpoint_interval_ms: int = 5_000
    idle_timeout_ms: int = 60_000


@dataclass(frozen=True)
class Lineage:
    """Where a new shard's state comes from: its parents (after a split or merge) and the
    partition keys of their state it keeps (its own hash range)."""

    parent_shard_ids: tuple[str, ...] = ()
    keep: Callable[[str], bool] = lambda _pk: True


class ShardEngine:
    """Processes one shard. Not thread-safe: one thread (or process) drives one engine."""

    def __init__(
        self,
        app: App,
        shard_id: str,
        *,
        sinks: Sequence[Sink],
        dead_letter: Sink,
        state_store: StateStore,
        checkpointer: Checkpointer,
        config: EngineConfig = EngineConfig(),
        now_ms: Callable[[], int] = wall_clock_ms,
        lineage: Lineage = Lineage(),
        fence: Callable[[str], SaveFence | None] | None = None,
    ) -> None:
        """`fence(shard_id)`: the lease this worker holds, so a save by a worker that lost
        the shard fails with LeaseLostError instead of overwriting the new owner's state."""
        self.app = app
        self._fence = fence
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
        self._applied_until: Position | None = None  # records at or below are in the state
        self._last_position: Position | None = None  # last record handled
        self._last_checkpoint_ms = now_ms()
        self._outputs: list[object] = []
        self._dirty = False  # records or outputs since the last checkpoint

    # -- lifecycle -------------------------------------------------------------------------

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
        """Run every record through decode, agents and tables; outputs go to the sinks."""
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
            event = Event.of(record, value)
            state.begin(event)
            for agent in agents:
                try:
                    agent.feed(value, outputs, event)
                except AgentError as exc:
                    counters.agent_errors += 1
                    log.warning("shard %s: %s", self.shard_id, exc)
                    self._dead_letter.write(DeadLetter.of(record, "agent", str(exc)))
            if state.take_late():
                counters.late_records += 1
                self._dead_letter.write(DeadLetter.of(record, "late", "late"))
            if outputs:
                self._route(outputs)
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
        """True when something happened since the last checkpoint and the interval passed."""
        if not self._dirty:
            return False
        return self._now_ms() - self._last_checkpoint_ms >= self._config.checkpoint_interval_ms

    def checkpoint(self, position: Position | None = None) -> None:
        """Flush sinks -> save the state snapshot -> write the checkpoint, in that order.

        If any step raises, the later steps do not run: a checkpoint is never written for
        outputs or state that are not durable.
        """
        started_ns = time.monotonic_ns()
        position = position or self._last_position or self._applied_until
        self._flush()
        self._save_state(position, final=False)
        if position is not None:
            self._checkpointer.checkpoint(self.shard_id, position)
            self.counters.checkpoints += 1
            self.counters.last_checkpoint_ms = self._now_ms()
            self.counters.checkpoint_us += (time.monotonic_ns() - started_ns) // 1000
        self._dirty = False
        self._last_checkpoint_ms = self._now_ms()

    def shard_ended(self) -> None:
        """The shard is closed (split or merge). Agents see their stream end; open windows
        are not emitted here but carried to the children in the final snapshot."""
        self.state.activate()
        for agent in self._agents:
            try:
                agent.close(self._outputs)
            except AgentError as exc:
                log.warning("shard %s: %s", self.shard_id, exc)
        self._route(self._outputs)
        self._flush()
        self._save_state(self._last_position or self._applied_until, final=True)
        self._checkpointer.checkpoint(self.shard_id, SHARD_END)

    def shutdown_requested(self) -> None:
        """The worker is stopping and keeps its lease until then: make everything durable."""
        if self._dirty:
            self.checkpoint()

    def lease_lost(self) -> None:
        """Another worker owns the shard now: drop buffers, never checkpoint."""
        for sink in self._sinks:
            sink.discard()
        self._dead_letter.discard()

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

    def _advance(self) -> None:
        """Close what the event clock has passed, then run the app's advance callbacks."""
        self._route(self.state.advance())
        clock_ms = self.state.event_clock_ms()
        if clock_ms is None or not self.app.advance_callbacks:
            return
        for callback in self.app.advance_callbacks:
            self._outputs.extend(callback(clock_ms))
        self._route(self._outputs)

    def _route(self, outputs: list[object]) -> None:
        if not outputs:
            return
        self._dirty = True
        self.counters.outputs += len(outputs)
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

    def _save_state(self, position: Position | None, *, final: bool) -> None:
        """Save what changed since the last saved snapshot (the final one: a whole base, the
        one split and merge children start from). The state counts as saved only once the
        store returned: a failed save leaves it changed, so the next checkpoint saves it."""
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
            fence=self._fence(self.shard_id) if self._fence is not None else None,
        )
        self.state.saved(pending)
        self.counters.snapshot_bytes += len(pending.data)
        if not pending.delta:
            self.counters.state_bytes = len(pending.data)  # the last whole snapshot
        self.counters.state_keys = self.state.key_count()
