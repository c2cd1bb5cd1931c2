"""The checkpoint contract shared by both runners."""

from __future__ import annotations

from typing import Protocol

from core.errors import LeaseLostError
from core.records import LeaseFence, Position


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
    - `fence(shard_id)` is the lease this worker holds for the shard now, for writes only the
      owner may make (the state snapshot save); None when the runner does not know it (the KCL
      daemon keeps its leases to itself). Raises `LeaseLostError` when the lease is known to be
      lost, without any call to AWS: the engine asks before it writes anything.
    """

    def checkpoint(self, shard_id: str, position: Position | str) -> None: ...

    def fence(self, shard_id: str) -> LeaseFence | None: ...


class RecordingCheckpointer:
    """Keeps checkpoints in memory: for `agent.test_context()` and unit tests.

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
