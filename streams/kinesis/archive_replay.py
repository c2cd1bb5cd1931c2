"""Replay from the raw-record archive: the archive's records through the same shard engines as
a replay from the stream, one engine per shard the records were read from, records in each
shard's sequence order.

A bounded pass, as the local runner's replay run: the objects are read in delivery order;
each object's records go to their shard's engine (`ShardProcessor` lifecycle:
`streams.processor`); once every object is read, each engine is given empty reads at the tip
(time passes, idle windows close, with the engines' bounded idle rule) until they were all
quiet for `quiet_ms` and everything they produced is checkpointed, then asked to shut down
(flush, save, checkpoint). Positions are recorded in memory only (`MemoryCheckpointer`): the
stream's lease table is not moved, because the archive's shards need not be the stream's
shards any more.

A line that is not a record goes to `dead_letter` (origin "archive", shard "archive", the
line's number as sequence number, the object key as detail, the line's bytes) and the rest of
its object is replayed. A record that comes after later ones of its shard (`ShardOrder`) goes
there too, as itself (origin "archive", `OUT_OF_ORDER`), rather than move the shard back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from core.errors import ShardBlockedError
from core.records import DeadLetter, LeaseFence, Position, Record
from sinks.base import Sink
from streams.kinesis.archive_reader import ArchiveObject, BadLine, ShardOrder, object_lines
from streams.kinesis.progress import duration
from streams.processor import EngineCounters, EngineFactory, ShardProcessor

ARCHIVE_ORIGIN: Final = "archive"
ARCHIVE_SHARD: Final = "archive"
OUT_OF_ORDER: Final = "archive record out of its shard's order"
MAX_BATCH: Final = 10_000
"""Records per `process_records` call: what one GetRecords call returns at most."""


class MemoryCheckpointer:
    """The `Checkpointer` of an archive replay: positions kept in memory (see the module
    docstring); no lease, so no fence."""

    def __init__(self) -> None:
        self.positions: dict[str, Position | str] = {}

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        self.positions[shard_id] = position

    def fence(self, shard_id: str) -> LeaseFence | None:
        return None


@dataclass
class ArchiveProgress:
    """What the replay has read so far; the time left is estimated from the bytes read."""

    total_objects: int
    total_bytes: int
    started_s: float
    objects: int = 0
    bytes_read: int = 0
    records: int = 0
    bad_lines: int = 0
    out_of_order: int = 0
    counters: dict[str, EngineCounters] = field(default_factory=dict)

    def line(self, now_s: float) -> str:
        elapsed_s = max(now_s - self.started_s, 1e-9)
        left: float | None = None
        if self.bytes_read:
            left = elapsed_s * (self.total_bytes - self.bytes_read) / self.bytes_read
        return (
            f"archive: {self.records:,} records read, {self.objects}/{self.total_objects} objects "
            f"({self.bytes_read / 1e6:,.2f} of {self.total_bytes / 1e6:,.2f} MB), "
            f"{self.records / elapsed_s:,.0f} records/s, about {duration(left)} left"
        )


class ArchiveReplay:
    """One replay of `objects` (`read_object(key) -> bytes`) through `engine_factory`."""

    def __init__(
        self,
        objects: list[ArchiveObject],
        read_object: Callable[[str], bytes],
        engine_factory: EngineFactory,
        dead_letter: Sink,
        *,
        order: ShardOrder,
        quiet_ms: int,
        poll_s: float = 0.2,
        progress: Callable[[str], None] = lambda _line: None,
        progress_s: float = 10.0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._objects = objects
        self._read_object = read_object
        self._factory = engine_factory
        self._dead_letter = dead_letter
        self._order = order
        self._quiet_ms = quiet_ms
        self._poll_s = poll_s
        self._report = progress
        self._progress_s = progress_s
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._sleep = sleep
        self.checkpointer = MemoryCheckpointer()
        self.engines: dict[str, ShardProcessor] = {}
        self.progress = ArchiveProgress(
            len(objects), sum(o.size for o in objects), started_s=monotonic()
        )

    @property
    def repeated(self) -> int:
        return self._order.repeated

    def run(self) -> ArchiveProgress:
        """Read every object, then close every shard's windows and shut the engines down."""
        last_report_s = self._monotonic()
        for obj in self._objects:
            self._replay_object(obj)
            now_s = self._monotonic()
            if now_s - last_report_s >= self._progress_s:
                self._report(self.progress.line(now_s))
                last_report_s = now_s
        self._close_windows()
        for engine in self.engines.values():
            engine.shutdown_requested()
        return self.progress

    def _replay_object(self, obj: ArchiveObject) -> None:
        body = self._read_object(obj.key)
        records: list[Record] = []
        bad = 0
        for item in object_lines(obj.key, body):
            if isinstance(item, BadLine):
                self._dead_letter.write(self._dead_letter_of(item))
                bad += 1
            else:
                records.append(item)
        if bad:
            self._dead_letter.flush()
        given, out_of_order = self._order.batches(records)
        for record in out_of_order:
            self._dead_letter.write(DeadLetter.of(record, ARCHIVE_ORIGIN, OUT_OF_ORDER))
        if out_of_order:
            self._dead_letter.flush()
            self.progress.out_of_order += len(out_of_order)
        for shard_id, shard_records in given.items():
            engine = self._engine(shard_id)
            for start in range(0, len(shard_records), MAX_BATCH):
                self._process(engine, shard_records[start : start + MAX_BATCH])
            self.progress.records += len(shard_records)
        self.progress.objects += 1
        self.progress.bytes_read += obj.size
        self.progress.bad_lines += bad

    def _dead_letter_of(self, bad: BadLine) -> DeadLetter:
        # Kept as long as any dead letter from the time it was found: the object may be older
        # than the dead letters' retention.
        return DeadLetter(
            ARCHIVE_SHARD,
            bad.line_number,
            0,
            "",
            ARCHIVE_ORIGIN,
            bad.reason,
            bad.data,
            self._clock_ms(),
            detail_key=bad.key,
        )

    def _engine(self, shard_id: str) -> ShardProcessor:
        engine = self.engines.get(shard_id)
        if engine is None:
            engine = self._factory(shard_id, self.checkpointer)
            engine.initialize("TRIM_HORIZON")
            self.engines[shard_id] = engine
            counters = getattr(engine, "counters", None)
            if isinstance(counters, EngineCounters):
                self.progress.counters[shard_id] = counters
        return engine

    def _process(
        self, engine: ShardProcessor, records: list[Record], millis_behind: int | None = None
    ) -> None:
        """As the local runner: a refused batch (buffers full) is handed again after a pause."""
        while True:
            try:
                engine.process_records(records, millis_behind)
                return
            except ShardBlockedError as exc:
                self._sleep(max(exc.retry_in_ms, 100) / 1000)

    def _close_windows(self) -> None:
        """Empty reads at the tip (MillisBehindLatest 0: the input is over) until every engine
        was quiet `quiet_ms` and is settled, as the local runner ends a bounded run."""
        quiet_since_s = self._monotonic()
        while True:
            for engine in self.engines.values():
                self._process(engine, [], 0)
            quiet_s = self._monotonic() - quiet_since_s
            settled = all(engine.health.settled for engine in self.engines.values())
            if quiet_s >= self._quiet_ms / 1000 and settled:
                return
            self._sleep(self._poll_s)
