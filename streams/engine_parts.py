"""What a shard engine counts, how it is configured, and the stable dead-letter reasons of
unexpected exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import AgentError
from streams.processor import Lineage


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
    max_buffered_outputs: int = 50_000
    """Outputs routed to the sinks and not yet flushed; over this the engine takes no new
    records until a checkpoint succeeds (memory stays flat while a store is down)."""
    retry_base_ms: int = 1_000
    retry_cap_ms: int = 60_000
    """A failed checkpoint is retried after a full-jitter pause of at most
    min(retry_cap_ms, retry_base_ms * 2**failures)."""


NO_LINEAGE = Lineage()
"""A shard that starts from its own state only."""


def internal_reason(exc: BaseException) -> str:
    """A stable dead-letter reason for an unexpected exception, with a short digest of it:
    `internal_error:<ExceptionType>: <message, 160 chars at most> at <file>:<line>`.
    Group by the part before the second colon."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else ""
    message = " ".join(str(exc).split())[:160]
    return f"internal_error:{type(exc).__name__}: {message}{where}"


def agent_reason(exc: AgentError) -> str:
    """The dead-letter reason of an agent failure: its cause's digest."""
    cause = exc.__cause__
    return internal_reason(cause) if cause is not None else str(exc)
