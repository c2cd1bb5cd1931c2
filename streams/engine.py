"""The per-shard engine: the record loop (decode -> agents -> tables -> outputs) of the one
`ShardProcessor` (its lifecycle and contract: `streams.processor`). What happens to the outputs
and when a position is recorded is the checkpoint step's (`streams.checkpoint`).

Poison isolation: whatever one record does (bad bytes, a decoder or an agent raising any
exception, a table callback raising), that record is dead-lettered with a stable reason and the
shard goes on. Back-pressure: outputs not yet flushed are bounded; over the bound the engine
takes no new records until a checkpoint empties its buffers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from core.clock import wall_clock_ms
from core.errors import AgentError, ShardBlockedError, agent_reason, internal_reason
from core.event import Event
from core.records import DeadLetter, Position, Record
from sinks.base import Sink
from streams.agent import AgentInstance
from streams.app import App
from streams.checkpoint import ShardCheckpoint
from streams.processor import (
    NO_LINEAGE,
    Checkpointer,
    EngineConfig,
    EngineCounters,
    Lineage,
    ShardHealth,
)
from tables.shard import ShardState
from tables.store import StateStore

log = logging.getLogger(__name__)


class ShardEngine:
    """Processes one shard: the `ShardProcessor` of both runners. Not thread-safe: one thread
    (or process) drives one engine; `health` may be read from any thread."""

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
        self.shard_id = shard_id
        self._lineage = lineage
        self._decode = app.decoder
        self._store = state_store
        self._now_ms = now_ms
        self._agents: list[AgentInstance[object]] = [a.instance() for a in app.agents]
        self.state = ShardState(
            app.tables,
            shard_id,
            now_ms,
            config.idle_timeout_ms,
            bounded=config.bounded,
            snapshot_format=config.snapshot_format,
            grace_boost=app.grace_boost,
            event_time=app.topic_.event_time if app.topic_ is not None else None,
            max_lead_ms=app.topic_.max_lead_ms if app.topic_ is not None else 0,
            source=app.topic_.source if app.topic_ is not None else None,
        )
        self.counters = EngineCounters()
        self.health = ShardHealth(shard_id)
        self.checkpoint = ShardCheckpoint(
            shard_id,
            state=self.state,
            sinks=sinks,
            prompt_types=app.prompt_types,
            dead_letter=dead_letter,
            store=state_store,
            checkpointer=checkpointer,
            config=config,
            counters=self.counters,
            health=self.health,
            now_ms=now_ms,
        )
        self._applied_until: Position | None = None  # records at or below are in the state
        self._outputs: list[object] = []
        self._callback_errors: set[str] = set()

    # -- ShardProcessor --------------------------------------------------------------------

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        """Load this shard's snapshot, or on a split or merge its parents' final snapshots
        filtered by the lineage's `keep(partition_key)` (the lineage given here, else the one
        given at construction)."""
        lineage = lineage or self._lineage
        own = self._store.load(self.shard_id)
        if own is not None:
            self.state.restore([own.blobs], lambda _pk: True)
            self._applied_until = self.checkpoint.position = own.position
            log.info("shard %s: state restored at %s", self.shard_id, own.position)
        else:
            chains = [
                snap.blobs
                for parent in lineage.parent_shard_ids
                if (snap := self._store.load(parent)) is not None
            ]
            if chains:
                self.state.restore(chains, lineage.keep)
                log.info(
                    "shard %s: state taken from parents %s",
                    self.shard_id,
                    lineage.parent_shard_ids,
                )
        self.health.status = "ok"
        log.info(
            "shard %s: starting after %s (state at %s)", self.shard_id, start, self._applied_until
        )

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        checkpoint = self.checkpoint
        if checkpoint.lost:
            return
        checkpoint.collect()
        if checkpoint.over_bound() and not checkpoint.try_commit():
            self.health.status = "blocked"
            raise ShardBlockedError(
                f"shard {self.shard_id}: {checkpoint.unflushed} outputs not flushed "
                f"(bound {checkpoint.bound}); last error: {self.health.last_error}",
                checkpoint.retry_in_ms(),
            )
        if records:
            self._process(records)
        else:
            if millis_behind_latest != 0:
                # Only a read that says it reached the tip proves idleness: behind the tip the
                # data is still coming, and an empty read after an error or an expired
                # iterator (no MillisBehindLatest) proves nothing.
                self.state.behind()
            self._tick()
        if checkpoint.due() or checkpoint.over_bound():
            checkpoint.try_commit()
        else:
            checkpoint.flush_prompt()
        self.health.settled = not checkpoint.pending and not checkpoint.saving

    def lease_lost(self) -> None:
        """See `ShardProcessor.lease_lost`: drop buffers, never checkpoint again."""
        self.checkpoint.lose()
        self._outputs.clear()
        self.health.status = "lease_lost"

    def shard_ended(self) -> None:
        """Agents see their stream end; open windows are not emitted here but carried to the
        children in the final snapshot."""
        if self.checkpoint.lost:
            return
        self.state.activate()
        for agent in self._agents:
            try:
                agent.close(self._outputs)
            except AgentError as exc:
                log.warning("shard %s: %s", self.shard_id, exc)
        self.checkpoint.write(self._outputs)
        self.checkpoint.commit_end()
        self.health.status = "ended"

    def shutdown_requested(self) -> None:
        if self.checkpoint.lost:
            return
        self.checkpoint.collect(wait=True)
        if self.checkpoint.pending:
            self.checkpoint.commit()
        self.health.status = "stopped"

    # -- observability (read from another thread: plain reads only) ----------------------

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The output sinks, then the dead-letter sink."""
        return (*self.checkpoint.sinks, self.checkpoint.dead_letters)

    # -- the record loop -------------------------------------------------------------------

    def _process(self, records: Sequence[Record]) -> None:
        """Run every record through decode, agents and tables; outputs go to the sinks. A
        record that raises anywhere on the way is dead-lettered; the next one goes on."""
        state = self.state
        state.activate()
        decode = self._decode
        outputs = self._outputs
        agents = self._agents
        counters = self.counters
        checkpoint = self.checkpoint
        dead_letter = checkpoint.dead_letter
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
                dead_letter(DeadLetter.of(record, "decode", str(exc)))
                continue
            except MemoryError:
                raise
            except Exception as exc:
                counters.bad_records += 1
                dead_letter(DeadLetter.of(record, "decode", internal_reason(exc)))
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
                        dead_letter(DeadLetter.of(record, "agent", agent_reason(exc)))
                if state.take_late():
                    counters.late_records += 1
                    dead_letter(DeadLetter.of(record, "late", "late"))
                if outputs:
                    checkpoint.write(outputs)
            except MemoryError:
                raise
            except Exception as exc:
                outputs.clear()
                counters.internal_errors += 1
                log.warning("shard %s: record %s: %r", self.shard_id, record.position, exc)
                dead_letter(DeadLetter.of(record, "engine", internal_reason(exc)))
        if last is not None:
            checkpoint.processed(last.position)
        self._advance()

    def _tick(self) -> None:
        """Let time pass without records: `take()` deadlines and idle window closing."""
        now_ms = self._now_ms()
        self.state.activate()
        for agent in self._agents:
            try:
                agent.tick(now_ms, self._outputs)
            except AgentError as exc:
                self.counters.agent_errors += 1
                log.warning("shard %s: %s", self.shard_id, exc)
        self.checkpoint.write(self._outputs)
        self._advance()

    def _advance(self) -> None:
        """Close what the event clock has passed, then run the app's advance callbacks. A
        callback that raises is dead-lettered (origin "callback") and the shard goes on."""
        try:
            closed = self.state.advance()
            if closed:
                # A closed window's report is written with the batch that closed it, by a
                # checkpoint; alarms alone (a site's demand spike) are flushed with the batch
                # anyway and need none.
                prompt = self.app.prompt_types
                if not prompt or not all(isinstance(output, prompt) for output in closed):
                    self.checkpoint.window_closed()
                self.checkpoint.write(closed)
            clock_ms = self.state.event_clock_ms()
            if clock_ms is None or not self.app.advance_callbacks:
                return
            with self.state.outside_records():
                for callback in self.app.advance_callbacks:
                    self._outputs.extend(callback(clock_ms))
            self.checkpoint.write(self._outputs)
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
            at = self.checkpoint.position or Position(0)
            self.checkpoint.dead_letter(
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


ShardEngineFactory = Callable[[str, Checkpointer], ShardEngine]
"""An `EngineFactory` whose processors are `ShardEngine`s (metrics read their counters)."""
