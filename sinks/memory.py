"""The in-memory sink of tests, simulations and benchmarks: the `Sink` contract, no AWS.

One type records both things a test asks of an output path: every output in the order the
agents wrote it (`written`), and what a checkpoint made durable (`stored`, by key, as an
idempotent store keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from itertools import count

from core.errors import SinkError


def _itself(item: object) -> Iterable[object]:
    return (item,)


def _identity_key(item: object) -> Hashable:
    if not isinstance(item, Hashable):
        raise TypeError(f"InMemorySink needs a key function for {type(item).__name__}")
    return item


class InMemorySink:
    """Buffers what `select` derives from each written item; `flush()` stores it by `key`.

    - `written`: every output, in write order, including those later discarded or replaced.
    - `buffer`: outputs written since the last flush or discard, by key.
    - `stored`: what flushes stored, by key, in first-stored order. A later output with the
      same key replaces the earlier one, as a put by deterministic key does; `replaces(held,
      new)` can refuse that, as a conditional (newer-than) write does.
    - `key=None` gives every output its own entry: `stored` is then every flushed output in
      order, repeats included (a log rather than a table).

    `fail_flushes = n` makes the next n flushes raise `SinkError` without storing anything
    (the buffer is kept, as the contract requires): an aborted checkpoint.
    """

    def __init__(
        self,
        select: Callable[[object], Iterable[object]] = _itself,
        key: Callable[[object], Hashable] | None = _identity_key,
        *,
        replaces: Callable[[object, object], bool] | None = None,
    ) -> None:
        self.written: list[object] = []
        self.stored: dict[Hashable, object] = {}
        self.buffer: dict[Hashable, object] = {}
        self.flushes = 0
        self.fail_flushes = 0
        self._select = select
        self._key: Callable[[object], Hashable] = key if key is not None else _numbered()
        self._replaces = replaces

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def write(self, item: object) -> None:
        for output in self._select(item):
            self.written.append(output)
            key = self._key(output)
            if self._replaces is not None:
                held = self.buffer.get(key, self.stored.get(key))
                if held is not None and not self._replaces(held, output):
                    continue
            self.buffer[key] = output

    def flush(self) -> None:
        if self.fail_flushes > 0:
            self.fail_flushes -= 1
            raise SinkError("InMemorySink: injected flush failure")
        self.stored.update(self.buffer)
        self.buffer.clear()
        self.flushes += 1

    def discard(self) -> None:
        self.buffer.clear()

    def values(self) -> list[object]:
        """Everything stored, in first-stored order."""
        return list(self.stored.values())


def _numbered() -> Callable[[object], Hashable]:
    """A key that is new for every output (for `key=None`)."""
    numbers = count()
    return lambda _output: next(numbers)
