"""The Sink protocol, what the per-shard engine needs from an output, and `SinkCounters`,
what every store-backed sink reports of its work (metrics and status read them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from core.retry import is_throttle


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


@dataclass
class SinkCounters:
    """What a sink did, for logs and metrics. Monotonic; never reset by a flush."""

    items_written: int = 0
    """Items (or records) durably accepted by the store."""
    calls: int = 0
    """Write calls made, retries included."""
    retries: int = 0
    """Calls that re-sent something: a whole call after an error, or an unprocessed subset."""
    throttles: int = 0
    """Calls refused as a whole because of throttling."""
    unprocessed: int = 0
    """Entries the store handed back unprocessed (partial batch failure), each re-sent."""
    stale_skipped: int = 0
    """Conditional writes not applied because the stored item was newer or equal."""
    rejected: int = 0
    """Items or records handed to `reject` (dead-lettered) instead of being stored."""
    splits: int = 0
    """Batches split in halves to isolate items the store refused as invalid."""
    request_us: int = 0
    """Time spent in write calls, retries included, in microseconds (metrics: mean latency)."""

    def count_retry(self, exc: BaseException) -> None:
        """A call is about to be repeated after `exc` (a throttle counts as one too)."""
        self.retries += 1
        if is_throttle(exc):
            self.throttles += 1

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Adds the time the block takes to `request_us`."""
        started_ns = time.monotonic_ns()
        try:
            yield
        finally:
            self.request_us += (time.monotonic_ns() - started_ns) // 1000
