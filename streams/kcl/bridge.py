"""The KCL MultiLangDaemon's per-shard process: the daemon's messages as `ShardProcessor`
calls (lifecycle and contract: `streams.processor`), one processor per leased shard.

The daemon writes one message per line on our stdin and waits for a status line on our stdout
after each (see `streams.kcl.protocol`); the processor asks for checkpoints while the daemon
waits, through `DaemonCheckpointer`.

Failure policy, because the daemon can only wait for our answer: a step that failed (loading
state at initialize, the final checkpoint at shardEnded) is retried here with capped
exponential backoff, and processRecords is not answered while the processor refuses records
(`ShardBlockedError`: its buffers are full and its checkpoint fails). The daemon then delivers
nothing more to this shard, so memory stays flat while a store is down, and nothing is lost.
A lost lease drops the processor; it never checkpoints again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from core.errors import CheckpointError, LeaseLostError, ShardBlockedError
from core.records import SENTINELS, SHARD_END, LeaseFence, Position
from core.retry import Backoff
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
from streams.processor import EngineFactory, ShardProcessor

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors the daemon reports for which the same checkpoint, asked again later, may succeed.
_RETRYABLE_ERRORS = frozenset({THROTTLING_EXCEPTION, DEPENDENCY_EXCEPTION})


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


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the leases of this daemon: its lease table (the KCL application name) and
    its worker id, as the daemon writes them into `leaseOwner`."""

    table: str
    owner: str


class DaemonCheckpointer:
    """`Checkpointer` that asks the daemon to checkpoint and waits for its answer.

    Usable only while the daemon waits for our answer to a message that carries a
    checkpointer (processRecords, shardEnded, shutdownRequested): that is when the engine
    checkpoints. Throttling and dependency errors are retried with `backoff`; the daemon's
    `ShutdownException` (the lease is gone or going) becomes `LeaseLostError`, any other
    error `CheckpointError`.
    """

    def __init__(
        self,
        channel: DaemonChannel,
        shard_id: str,
        backoff: Backoff,
        holder: LeaseHolder | None = None,
    ) -> None:
        self._channel = channel
        self._shard_id = shard_id
        self._backoff = backoff
        self._holder = holder
        self.lost = False
        """Set once the daemon said the lease is gone (or `lose()`): no request is sent after."""

    def lose(self) -> None:
        self.lost = True

    def fence(self, shard_id: str) -> LeaseFence | None:
        """The lease as the daemon holds it: its lease table and worker id. The daemon renews
        the counter on its own, so the fence names the owner only (counter 0): a save is
        refused once another worker took the lease, which is what keeps a stalled former
        owner's late save from landing over the new owner's state. None when the holder is
        not known (then saves are not fenced)."""
        if self.lost:
            raise LeaseLostError(f"{shard_id}: the lease was lost")
        holder = self._holder
        if holder is None:
            return None
        return LeaseFence(holder.table, shard_id, holder.owner, 0)

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        if self.lost:
            raise LeaseLostError(f"{shard_id}: the lease was lost; not asking the daemon")
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
                self.lost = True
                raise LeaseLostError(f"{shard_id}: checkpoint at {position}: {answer.error}")
            raise CheckpointError(f"{shard_id}: checkpoint at {position}: {answer.error}")


Observer = Callable[[InboundMessage], None]
"""Called after each message was handled, before the answer is sent (status reporting for
metrics and health: it must not write to stdout, the protocol channel)."""


class DaemonBridge:
    """Answers the daemon's messages for one shard until the daemon closes our stdin."""

    def __init__(
        self,
        engine_factory: EngineFactory,
        channel: DaemonChannel,
        backoff: Backoff,
        observer: Observer | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        holder: LeaseHolder | None = None,
    ) -> None:
        self._holder = holder
        self._observer = observer
        self._factory = engine_factory
        self._channel = channel
        self._backoff = backoff
        self._sleep = sleep
        self.shard_id: str | None = None
        self.processor: ShardProcessor | None = None
        self._checkpointer: DaemonCheckpointer | None = None

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
        checkpointer = DaemonCheckpointer(
            self._channel, message.shard_id, self._backoff, self._holder
        )
        processor = self._factory(message.shard_id, checkpointer)
        self._retrying("initialize", lambda: processor.initialize(_start_of(message)))
        self.processor, self._checkpointer = processor, checkpointer

    def _process(self, message: ProcessRecords) -> None:
        processor = self.processor
        if processor is None or self.shard_id is None:
            return  # the lease was lost; the daemon stops sending soon
        records = to_records(self.shard_id, message)
        while True:
            try:
                processor.process_records(records, message.millis_behind_latest)
                return
            except ShardBlockedError as exc:
                # Not answering is the back-pressure: the daemon sends nothing more meanwhile.
                self._sleep(max(exc.retry_in_ms, 100) / 1000)
            except LeaseLostError as exc:
                log.warning("%s: %s; dropping the shard", self.shard_id, exc)
                self._drop()
                return

    def _lease_lost(self) -> None:
        log.info("%s: lease lost", self.shard_id)
        self._drop()

    def _shard_ended(self) -> None:
        processor = self.processor
        if processor is None:
            return
        try:
            self._retrying("shard end", processor.shard_ended)
        except LeaseLostError as exc:
            log.warning("%s: %s; dropping the shard", self.shard_id, exc)
            self._drop()
            return
        self.processor = None
        log.info("%s: shard ended, checkpointed SHARD_END", self.shard_id)

    def _shutdown_requested(self) -> None:
        processor = self.processor
        if processor is None:
            return
        try:
            processor.shutdown_requested()
        except LeaseLostError as exc:
            log.warning("%s: %s; dropping the shard", self.shard_id, exc)
            self._drop()
        except Exception as exc:
            # The worker is stopping either way; the next owner resumes from the last
            # checkpoint and the outputs are idempotent.
            log.error("%s: final checkpoint failed: %r", self.shard_id, exc)

    def _drop(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.lose()
        if self.processor is not None:
            self.processor.lease_lost()
        self.processor = None

    def _retrying(self, what: str, step: Callable[[], T]) -> T:
        """Run `step` until it succeeds, with capped exponential backoff and full jitter.
        `LeaseLostError` and protocol errors end the retries."""
        retry = 0
        while True:
            try:
                return step()
            except (LeaseLostError, ProtocolError):
                raise
            except Exception as exc:
                level = logging.ERROR if retry == 0 or retry % 10 == 0 else logging.WARNING
                log.log(
                    level,
                    "%s: %s failed (attempt %d), retrying: %r",
                    self.shard_id,
                    what,
                    retry + 1,
                    exc,
                )
                self._sleep(self._backoff.delay_ms(min(retry, 30)) / 1000)
                retry += 1


def _start_of(message: Initialize) -> Position | str:
    raw = message.sequence_number
    if raw is None:
        return "TRIM_HORIZON"
    if raw in SENTINELS or not raw.isdigit():
        return raw
    return Position(int(raw), message.sub_sequence_number or 0)


def run_processor(
    engine_factory: EngineFactory,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    backoff: Backoff | None = None,
    observer: Observer | None = None,
    holder: LeaseHolder | None = None,
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
    processor = DaemonBridge(
        engine_factory,
        DaemonChannel(stdin, stdout),
        backoff or Backoff(base_ms=100, cap_ms=5_000),
        observer,
        holder=holder,
    )
    try:
        processor.run()
    except ProtocolError as exc:
        log.error("%s: %s", processor.shard_id, exc)
        return 2
    return 0
