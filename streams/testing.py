"""`AgentTestContext(app)`: run an app's agents over one in-memory shard, without AWS.

    with AgentTestContext(app) as ctx:
        outputs = ctx.put(encode_telemetry(reading), key=reading.site_id)
        ctx.checkpoint()
        assert ctx.dead_letters == []
        assert dict(ctx.table_items(asset_rules))["lamp-1"].on

It is the real `ShardEngine` (decode -> agents -> tables -> sinks -> checkpoint step) over
in-memory sinks, an in-memory state store and a recording checkpointer, with a clock the test
drives. `restart()` drops the engine as a crash would and starts a new one from what was
checkpointed, so recovery can be tested too. Faust's `agent.test_context()` is async; this one is a
plain context manager (the engine drives agents without an event loop) and also supports
`async with` for Faust-shaped tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from core.clock import ManualClock
from core.errors import LeaseLostError
from core.records import TRIM_HORIZON, DeadLetter, LeaseFence, Position, Record
from sinks.base import Sink
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.processor import NO_LINEAGE, EngineConfig, Lineage
from tables.store import InMemoryStateStore
from tables.table import Table


class RecordingCheckpointer:
    """Keeps checkpoints in memory: for `AgentTestContext` and unit tests.

    `lose(shard_id)` makes the lease of a shard lost: its `fence` and `checkpoint` then raise
    `LeaseLostError`, and `calls` shows whether anyone still tried to checkpoint."""

    def __init__(self) -> None:
        self.positions: dict[str, Position | str] = {}
        self.calls: list[tuple[str, Position | str]] = []
        self.lost: set[str] = set()

    def lose(self, shard_id: str) -> None:
        self.lost.add(shard_id)

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        self.calls.append((shard_id, position))
        if shard_id in self.lost:
            raise LeaseLostError(f"lease {shard_id} is lost")
        self.positions[shard_id] = position

    def fence(self, shard_id: str) -> LeaseFence | None:
        if shard_id in self.lost:
            raise LeaseLostError(f"lease {shard_id} is lost")
        return None


class AgentTestContext:
    """One shard of `app`, in memory. See the module docstring.

    `sink` records every output in order (`sink.written`) and what each checkpoint stored;
    `sinks` are further sinks that get the same outputs (e.g. the command model's view).
    A test that needs its own dead-letter sink, state store, checkpointer or clock passes
    it; two contexts over one `store` are two engines of one shard, one after the other.
    The engine is initialized at once, after TRIM_HORIZON, with `lineage`.
    """

    def __init__(
        self,
        app: App,
        *,
        shard_id: str = "shardId-000000000000",
        now_ms: int = 1_800_000_000_000,
        clock: ManualClock | None = None,
        config: EngineConfig | None = None,
        sinks: Sequence[Sink] = (),
        dead_letter: InMemorySink | None = None,
        store: InMemoryStateStore | None = None,
        checkpointer: RecordingCheckpointer | None = None,
        lineage: Lineage = NO_LINEAGE,
    ) -> None:
        self.app = app
        self.shard_id = shard_id
        self.clock = clock if clock is not None else ManualClock(now_ms)
        self.config = config or EngineConfig()
        self.sink = InMemorySink(key=None)
        self.sinks: tuple[Sink, ...] = (self.sink, *sinks)
        self.dead_letter_sink = (
            dead_letter if dead_letter is not None else InMemorySink(key=_dead_letter_key)
        )
        self.store = store if store is not None else InMemoryStateStore()
        self.checkpointer = checkpointer if checkpointer is not None else RecordingCheckpointer()
        self.lineage = lineage
        self._sequence = 0
        self.engine = self._start()

    def _start(self) -> ShardEngine:
        engine = ShardEngine(
            self.app,
            self.shard_id,
            sinks=self.sinks,
            dead_letter=self.dead_letter_sink,
            state_store=self.store,
            checkpointer=self.checkpointer,
            config=self.config,
            now_ms=self.clock,
        )
        engine.initialize(TRIM_HORIZON, self.lineage)
        return engine

    # -- driving ---------------------------------------------------------------------------

    def put(self, data: bytes, *, key: str = "", arrival_ms: int | None = None) -> list[object]:
        """Process one record with `data` and partition key `key`; returns its outputs."""
        return self.put_many([(key, data)], arrival_ms=arrival_ms)

    def put_many(
        self, records: Sequence[tuple[str, bytes]], *, arrival_ms: int | None = None
    ) -> list[object]:
        """Process `(partition key, data)` records as one batch; returns their outputs."""
        batch = []
        for key, data in records:
            self._sequence += 1
            batch.append(
                Record(
                    self.shard_id,
                    self._sequence,
                    0,
                    key,
                    data,
                    self.clock.now_ms if arrival_ms is None else arrival_ms,
                )
            )
        before = len(self.sink.written)
        self.engine.process_records(batch)
        return self.sink.written[before:]

    def deliver(self, records: Sequence[Record]) -> list[object]:
        """Process `records` as one batch, as a runner hands them (their own sequence numbers
        and arrival times); returns their outputs."""
        before = len(self.sink.written)
        self.engine.process_records(records)
        return self.sink.written[before:]

    def tick(self, now_ms: int | None = None, *, caught_up: bool = True) -> list[object]:
        """Move processing time to `now_ms` (if given) and hand the engine an empty read:
        one that reached the tip (`caught_up`, MillisBehindLatest 0), or one that proves
        nothing (a failed read, an expired iterator: no MillisBehindLatest)."""
        if now_ms is not None:
            self.clock.now_ms = now_ms
        before = len(self.sink.written)
        self.engine.process_records([], millis_behind_latest=0 if caught_up else None)
        return self.sink.written[before:]

    def checkpoint(self) -> Position | str | None:
        """Run the checkpoint step now; returns the checkpointed position."""
        self.engine.checkpoint.commit()
        return self.checkpointer.positions.get(self.shard_id)

    def restart(self) -> None:
        """Drop the engine as a crash would (unflushed outputs are lost) and start a new one
        from the last saved state; records are then re-delivered by the caller."""
        for sink in (*self.sinks, self.dead_letter_sink):
            sink.discard()
        self.engine = self._start()

    # -- reading ---------------------------------------------------------------------------

    @property
    def outputs(self) -> list[object]:
        """Every output the agents produced, in order (flushed or not)."""
        return list(self.sink.written)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Dead letters buffered or stored."""
        letters = [*self.dead_letter_sink.stored.values(), *self.dead_letter_sink.buffer.values()]
        return [d for d in letters if isinstance(d, DeadLetter)]

    def table_items(self, table: Table[Any]) -> list[tuple[Any, Any]]:
        """The items of a plain table in this shard."""
        self.engine.state.activate()
        return list(table.items())

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> AgentTestContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.engine.shutdown_requested()

    async def __aenter__(self) -> AgentTestContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _dead_letter_key(item: object) -> object:
    if isinstance(item, DeadLetter):
        return (item.shard_id, item.sequence_number, item.sub_sequence_number, item.origin)
    return id(item)
