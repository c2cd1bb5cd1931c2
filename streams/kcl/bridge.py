"""The luxflow shard processor the MultiLangDaemon starts: one process per leased shard.

The daemon writes one message per line on our stdin and waits for a status line on our stdout
after each (see `streams.kcl.protocol`). This module turns that conversation into calls on a
per-shard engine, the same engine the local runner drives:

    initialize          engine = factory(shard_id, checkpointer); engine.start()
    processRecords      engine.process(records) (engine.tick() for an empty batch);
                        engine.checkpoint(last position) when engine.checkpoint_due()
    leaseLost           engine.lease_lost(): drop buffers and state, never checkpoint
    shardEnded          engine.shard_ended(): flush, save, checkpoint SHARD_END
    shutdownRequested   engine.shutdown_requested(): flush, save, checkpoint

Failure policy, because the daemon calls `System.exit(1)` as soon as a processor fails to
answer: a failed *periodic* checkpoint is logged and retried at the next due checkpoint (the
engine keeps its buffers, nothing is lost); a lost lease drops the engine; an error while
starting, processing or ending a shard ends this process, so the daemon restarts from the
last checkpoint rather than carry on with half-applied state.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, Protocol

from core.errors import CheckpointError, LeaseLostError, SinkError, StateStoreError
from core.records import SHARD_END, Position, Record
from core.retry import Backoff
from streams.checkpoints import Checkpointer
from streams.kcl.protocol import (
    ACTION_OF,
    DEPENDENCY_EXCEPTION,
    SHUTDOWN_EXCEPTION,
    THROTTLING_EXCEPTION,
    CheckpointResult,
    InboundMessage,
    Initialize,
    LeaseLost,
    ProcessRecords,
    ProtocolError,
    ShardEnded,
    Shutdown,
    ShutdownRequested,
    decode_message,
    encode_checkpoint,
    encode_status,
    to_records,
)

log = logging.getLogger(__name__)

# Errors the daemon reports for which the same checkpoint, asked again later, may succeed.
_RETRYABLE_ERRORS = frozenset({THROTTLING_EXCEPTION, DEPENDENCY_EXCEPTION})


class ShardEngineLike(Protocol):
    """What the bridge needs of `streams.engine.ShardEngine` (see its lifecycle docs)."""

    def start(self) -> object: ...
    def process(self, records: Sequence[Record]) -> None: ...
    def tick(self) -> None: ...
    def checkpoint_due(self) -> bool: ...
    def checkpoint(self, position: Position) -> None: ...
    def shard_ended(self) -> None: ...
    def lease_lost(self) -> None: ...
    def shutdown_requested(self) -> None: ...


EngineFactory = Callable[[str, Checkpointer], ShardEngineLike]
"""Builds the engine of one shard: (shard id, checkpointer) -> engine. The protocol does not
say which shards are a shard's parents; a factory that needs them reads the lease table's
`parentShardId`."""


class DaemonChannel:
    """Line-framed messages to and from the daemon over a pair of byte streams."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self._in = stdin
        self._out = stdout

    def read(self) -> InboundMessage | None:
        """The next message, or None once the daemon closed our stdin."""
        while True:
            line = self._in.readline()
            if not line:
                return None
            if line.strip():
                return decode_message(line)

    def send(self, line: bytes) -> None:
        self._out.write(line)
        self._out.flush()


class DaemonCheckpointer:
    """`Checkpointer` that asks the daemon to checkpoint and waits for its answer.

    Usable only while the daemon waits for our answer to a message that carries a
    checkpointer (processRecords, shardEnded, shutdownRequested): that is when the engine
    checkpoints. Throttling and dependency errors are retried with `backoff`; the daemon's
    `ShutdownException` (the lease is gone or going) becomes `LeaseLostError`, any other
    error `CheckpointError`.
    """

    def __init__(self, channel: DaemonChannel, shard_id: str, backoff: Backoff) -> None:
        self._channel = channel
        self._shard_id = shard_id
        self._backoff = backoff

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        if shard_id != self._shard_id:
            raise CheckpointError(f"processor of {self._shard_id} asked to checkpoint {shard_id}")
        if isinstance(position, str):
            if position != SHARD_END:
                raise CheckpointError(f"{shard_id}: cannot checkpoint at {position}")
            # No sequence number: the daemon's checkpointer then writes the largest permitted
            # value, which inside shardEnded is SHARD_END.
            request = encode_checkpoint(None)
        else:
            request = encode_checkpoint(position)
        retry = 0
        while True:
            self._channel.send(request)
            answer = self._channel.read()
            if not isinstance(answer, CheckpointResult):
                raise CheckpointError(
                    f"{shard_id}: expected the daemon's checkpoint answer, got {answer!r}"
                )
            if answer.error is None:
                return
            if answer.error in _RETRYABLE_ERRORS and retry + 1 < self._backoff.max_attempts:
                log.warning("%s: checkpoint at %s: %s, retrying", shard_id, position, answer.error)
                self._backoff.pause(retry)
                retry += 1
                continue
            if answer.error == SHUTDOWN_EXCEPTION:
                raise LeaseLostError(f"{shard_id}: checkpoint at {position}: {answer.error}")
            raise CheckpointError(f"{shard_id}: checkpoint at {position}: {answer.error}")


Observer = Callable[[InboundMessage], None]
"""Called after each message was handled, before the answer is sent (status reporting for
metrics and health: it must not write to stdout, the protocol channel)."""


class ShardProcessor:
    """Answers the daemon's messages for one shard until the daemon closes our stdin."""

    def __init__(
        self,
        engine_factory: EngineFactory,
        channel: DaemonChannel,
        backoff: Backoff,
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer
        self._factory = engine_factory
        self._channel = channel
        self._backoff = backoff
        self.shard_id: str | None = None
        self._engine: ShardEngineLike | None = None
        self._last_position: Position | None = None

    def run(self) -> None:
        while (message := self._channel.read()) is not None:
            if isinstance(message, CheckpointResult):
                # Only ever an answer to our own request, read inside DaemonCheckpointer.
                log.warning("unexpected checkpoint answer from the daemon: %r", message)
                continue
            self.handle(message)
            if self._observer is not None:
                self._observer(message)
            self._channel.send(encode_status(ACTION_OF[type(message)]))

    def handle(self, message: InboundMessage) -> None:
        if isinstance(message, ProcessRecords):
            self._process(message)
        elif isinstance(message, Initialize):
            self._initialize(message)
        elif isinstance(message, LeaseLost):
            self._lease_lost()
        elif isinstance(message, ShardEnded):
            self._shard_ended()
        elif isinstance(message, ShutdownRequested):
            self._shutdown_requested()
        elif isinstance(message, Shutdown):
            # KCL 1.x: TERMINATE means the shard ended, ZOMBIE that the lease was lost.
            if message.reason == "TERMINATE":
                self._shard_ended()
            else:
                self._lease_lost()

    def _initialize(self, message: Initialize) -> None:
        self.shard_id = message.shard_id
        checkpointer = DaemonCheckpointer(self._channel, message.shard_id, self._backoff)
        engine = self._factory(message.shard_id, checkpointer)
        engine.start()
        self._engine = engine
        log.info("%s: started at %s", message.shard_id, message.sequence_number)

    def _process(self, message: ProcessRecords) -> None:
        engine = self._engine
        if engine is None or self.shard_id is None:
            return  # the lease was lost; the daemon stops sending soon
        if message.records:
            records = to_records(self.shard_id, message)
            engine.process(records)
            self._last_position = records[-1].position
        else:
            engine.tick()
        if self._last_position is not None and engine.checkpoint_due():
            try:
                engine.checkpoint(self._last_position)
            except LeaseLostError as exc:
                log.warning("%s: %s; dropping the shard", self.shard_id, exc)
                self._drop()
            except (CheckpointError, SinkError, StateStoreError) as exc:
                log.error("%s: checkpoint failed, retrying later: %s", self.shard_id, exc)

    def _lease_lost(self) -> None:
        log.info("%s: lease lost", self.shard_id)
        self._drop()

    def _shard_ended(self) -> None:
        if self._engine is None:
            return
        try:
            self._engine.shard_ended()
        except LeaseLostError as exc:
            log.warning("%s: %s; dropping the shard", self.shard_id, exc)
            self._drop()
            return
        self._engine = None
        log.info("%s: shard ended, checkpointed SHARD_END", self.shard_id)

    def _shutdown_requested(self) -> None:
        if self._engine is None:
            return
        try:
            self._engine.shutdown_requested()
        except LeaseLostError as exc:
            log.warning("%s: %s; dropping the shard", self.shard_id, exc)
            self._drop()
        except (CheckpointError, SinkError, StateStoreError) as exc:
            # The worker is stopping either way; the next owner resumes from the last
            # checkpoint and the outputs are idempotent.
            log.error("%s: final checkpoint failed: %s", self.shard_id, exc)

    def _drop(self) -> None:
        if self._engine is not None:
            self._engine.lease_lost()
        self._engine = None


def run_processor(
    engine_factory: EngineFactory,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    backoff: Backoff | None = None,
    observer: Observer | None = None,
) -> int:
    """Serve one shard for the MultiLangDaemon; returns the process exit code.

    With the default streams (the process's stdin and stdout), `sys.stdout` is pointed at
    stderr for the rest of the process, so a stray `print` cannot corrupt the protocol; the
    daemon copies our stderr into its log.
    """
    if stdin is None:
        stdin = sys.stdin.buffer
    if stdout is None:
        stdout = sys.stdout.buffer
        sys.stdout = sys.stderr
    processor = ShardProcessor(
        engine_factory,
        DaemonChannel(stdin, stdout),
        backoff or Backoff(base_ms=100, cap_ms=5_000),
        observer,
    )
    try:
        processor.run()
    except ProtocolError as exc:
        log.error("%s: %s", processor.shard_id, exc)
        return 2
    return 0
