"""The one error hierarchy of luxflow. Every error we raise derives from LuxflowError.

`domain/` is pure and imports nothing of ours, so its validation errors are plain
`ValueError`s; the engine treats a `ValueError` from a decoder as a bad record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


class LuxflowError(Exception):
    """Root of every error luxflow raises on purpose."""


class ConfigError(LuxflowError):
    """A setting is missing or invalid. Raised at start-up, before any record is read."""


class SinkError(LuxflowError):
    """A sink could not durably write its buffer. The checkpoint that needed it is aborted."""


class StateStoreError(LuxflowError):
    """A state snapshot could not be saved or loaded. The checkpoint is aborted."""


class CheckpointError(LuxflowError):
    """The checkpoint could not be written (throttled past retries, table missing, ...)."""


class LeaseLostError(CheckpointError):
    """Another worker owns the shard's lease now: stop processing it and do not checkpoint."""


class ShardBlockedError(LuxflowError):
    """A shard processor refused new records: its sink buffers are over their bound and the
    checkpoint that would empty them failed. The runner hands the same records again later
    (after a backoff); nothing was taken from them. `retry_in_ms`: when the processor will
    try its checkpoint again."""

    def __init__(self, message: str, retry_in_ms: int = 0) -> None:
        super().__init__(message)
        self.retry_in_ms = retry_in_ms


class SourceError(LuxflowError):
    """The record source failed in a way retries did not fix."""


class AgentError(LuxflowError):
    """An agent misbehaved (awaited something other than its stream, raised, ...)."""


class ReplayRefusedError(LuxflowError):
    """`luxflow replay` would disturb live workers or was not confirmed."""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it (`raise ... from`, or raised while handling), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


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
