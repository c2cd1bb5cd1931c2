"""Shard processors report their status to the worker through files, never through stdout.

In the KCL runner a shard processor's stdout is the daemon's protocol channel and its stderr
goes into the daemon's log, so a processor writes no metrics at all. After handling a message
it writes `<status dir>/<shard id>.json` (at most once a second, and at once on a checkpoint,
a lost lease, the end of the shard or a shutdown), atomically (temporary file + rename).
The worker process (`luxflow worker --runner kcl`, the daemon's parent) reads every file on its
metrics timer, and serves `/readyz` and writes EMF from them (`streams.observe.status`).

A file whose process is gone stops counting as a shard this worker processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from core.clock import Clock, wall_clock_ms
from core.logs import set_shard
from streams.engine import ShardEngine
from streams.kcl.protocol import (
    InboundMessage,
    Initialize,
    LeaseLost,
    ProcessRecords,
    ShardEnded,
    Shutdown,
    ShutdownRequested,
)
from streams.observe.metrics import ENDED, RELEASED, RUNNING, ShardStatus, WorkerStatus
from streams.observe.status import RegistryStats, engine_status
from streams.processor import Checkpointer, EngineFactory

log = logging.getLogger(__name__)

STALE_FILE_MS = 600_000
"""Files of ended or gone processors are deleted after this long."""


class ProcessorStatus(msgspec.Struct, frozen=True):
    pid: int
    shard: ShardStatus
    lease_lost: bool = False
    registry_loaded_ms: int | None = None
    unknown_assets: int | None = None


class StatusReporter:
    """The processor side: `engine_factory(factory)` wraps the factory to see the engine;
    pass `observe` to `run_processor(observer=...)`."""

    def __init__(
        self,
        directory: Path,
        *,
        registry: RegistryStats | None = None,
        min_interval_ms: int = 1_000,
        now_ms: Clock = wall_clock_ms,
    ) -> None:
        self._dir = directory
        self._registry = registry
        self._min_interval_ms = min_interval_ms
        self._now_ms = now_ms
        self._engine: ShardEngine | None = None
        self._generation = f"{os.getpid()}-{now_ms()}"
        self._millis_behind: int | None = None
        self._caught_up = False
        self._written_ms = 0
        self._written_checkpoints = -1
        directory.mkdir(parents=True, exist_ok=True)

    def engine_factory(self, factory: Callable[[str, Checkpointer], ShardEngine]) -> EngineFactory:
        def build(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
            set_shard(shard_id)
            self._engine = factory(shard_id, checkpointer)
            return self._engine

        return build

    def observe(self, message: InboundMessage) -> None:
        engine = self._engine
        if engine is None:
            return
        if isinstance(message, ProcessRecords):
            self._millis_behind = message.millis_behind_latest
            self._caught_up = not message.records and not message.millis_behind_latest
            due = self._now_ms() - self._written_ms >= self._min_interval_ms
            if due or engine.counters.checkpoints != self._written_checkpoints:
                self._write(engine, RUNNING)
        elif isinstance(message, Initialize):
            self._write(engine, RUNNING)
        elif isinstance(message, LeaseLost):
            self._write(engine, RELEASED, lost=True)
        elif isinstance(message, ShardEnded):
            self._write(engine, ENDED)
        elif isinstance(message, ShutdownRequested):
            self._write(engine, RELEASED)
        elif isinstance(message, Shutdown):
            ended = message.reason == "TERMINATE"
            self._write(engine, ENDED if ended else RELEASED, lost=not ended)

    def _write(self, engine: ShardEngine, phase: str, *, lost: bool = False) -> None:
        loaded_ms, unknown = self._registry() if self._registry is not None else (None, None)
        status = ProcessorStatus(
            os.getpid(),
            engine_status(
                engine,
                self._generation,
                phase=phase,
                millis_behind=self._millis_behind,
                caught_up=self._caught_up,
                now_ms=self._now_ms,
            ),
            lost,
            loaded_ms,
            unknown,
        )
        path = self._dir / f"{engine.shard_id}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_bytes(msgspec.json.encode(status))
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("%s: cannot write status file %s: %s", engine.shard_id, path, exc)
            return
        self._written_ms = self._now_ms()
        self._written_checkpoints = engine.counters.checkpoints


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatusDirectory:
    """The worker side: every processor's last status as one `WorkerStatus`."""

    def __init__(
        self,
        directory: Path,
        *,
        alive: Callable[[int], bool] = pid_alive,
        now_ms: Clock = wall_clock_ms,
    ) -> None:
        self.directory = directory
        self._alive = alive
        self._now_ms = now_ms
        self._losses: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """Forget the files of an earlier run of this worker."""
        for path in self.directory.glob("*.json"):
            path.unlink(missing_ok=True)

    def read(self) -> WorkerStatus:
        shards: list[ShardStatus] = []
        loaded: list[int] = []
        unknown: list[int] = []
        now_ms = self._now_ms()
        for path in sorted(self.directory.glob("*.json")):
            try:
                status = msgspec.json.decode(path.read_bytes(), type=ProcessorStatus)
            except (OSError, msgspec.DecodeError):
                continue  # removed or half-written by an older version: next time
            shard = status.shard
            alive = self._alive(status.pid)
            if shard.phase == RUNNING and not alive:
                shard = msgspec.structs.replace(shard, phase=RELEASED)
            if status.lease_lost:
                self._losses.add(shard.generation)
            if not alive and now_ms - shard.updated_ms > STALE_FILE_MS:
                path.unlink(missing_ok=True)
            shards.append(shard)
            if alive and status.registry_loaded_ms is not None:
                loaded.append(status.registry_loaded_ms)
            if alive and status.unknown_assets is not None:
                unknown.append(status.unknown_assets)
        return WorkerStatus(
            shards,
            lease_takeovers=0,  # the daemon takes leases; it does not tell its processors
            lease_losses=len(self._losses),
            registry_loaded_ms=min(loaded) if loaded else None,
            unknown_assets=max(unknown) if unknown else None,
        )
