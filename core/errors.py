"""The one error hierarchy of luxflow. Every error we raise derives from LuxflowError.

`domain/` is pure and imports nothing of ours, so its validation errors are plain
`ValueError`s; the engine treats a `ValueError` from a decoder as a bad record.
"""

from __future__ import annotations

from collections.abc import Iterator


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
