"""The checkpoint contract shared by both runners."""

from __future__ import annotations

from typing import Protocol

from core.records import Position


class Checkpointer(Protocol):
    """Records how far a shard has been processed, in the KCL lease table.

    Contract:
    - `checkpoint(shard_id, position)` means every record at or before `position` has been
      processed and everything it produced is durable. The engine calls it only after its
      sinks flushed and its state snapshot was saved (DESIGN.md: flush -> state -> checkpoint).
    - `position` is a `Position`, or the string "SHARD_END" once the shard is finished; after
      SHARD_END the children of the shard may start.
    - Raises `LeaseLostError` when another worker owns the lease now (the caller must stop the
      shard without further checkpoints), `CheckpointError` for anything retries did not fix.
    """

    def checkpoint(self, shard_id: str, position: Position | str) -> None: ...


class RecordingCheckpointer:
    """Keeps checkpoints in memory: for `agent.test_context()` and unit tests."""

    def __init__(self) -> None:
        self.positions: dict[str, Position | str] = {}

    def checkpoint(self, shard_id: str, position: Position | str) -> None:
        self.positions[shard_id] = position
