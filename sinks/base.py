"""The Sink protocol: what the per-shard engine needs from an output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Sink(Protocol):
    """Buffers the outputs of one shard and writes them durably on `flush`.

    One instance serves exactly one shard (built by a `SinkFactory`), so a sink never
    sees two shards' items and needs no locks.

    Contract:
    - `write(item)` takes any agent output; a sink ignores items it has no use for. It may write
      a full batch early (outputs are idempotent by key), but it never loses a buffered item.
    - `flush()` returns only when everything written so far is durably stored. If it raises
      `SinkError`, the checkpoint that needed it is aborted and the unwritten items stay buffered.
    - `discard()` drops the buffer without writing (the lease was lost; another worker redoes it).
    - Items are keyed deterministically, so writing the same item twice leaves one item stored.
    """

    def write(self, item: object) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...


SinkFactory = Callable[[str], Sink]
"""Builds the sink instance for one shard, given the shard id."""
