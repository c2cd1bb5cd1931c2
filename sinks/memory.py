"""An in-memory sink for unit tests: the same buffer/flush/discard contract, no AWS."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from core.errors import SinkError


def _itself(item: object) -> Iterable[object]:
    return (item,)


def _identity_key(item: object) -> Hashable:
    if not isinstance(item, Hashable):
        raise TypeError(f"InMemorySink needs a key function for {type(item).__name__}")
    return item


class InMemorySink:
    """Stores what `select` derives from each output, by `key`; later writes of a key win.

    `flush()` moves the buffer into `stored`; `discard()` drops the buffer. To test an
    aborted checkpoint, `fail_flushes = n` makes the next n flushes raise `SinkError`
    without storing anything (the buffer is kept, as the contract requires).
    """

    def __init__(
        self,
        select: Callable[[object], Iterable[object]] = _itself,
        key: Callable[[object], Hashable] = _identity_key,
    ) -> None:
        self.stored: dict[Hashable, object] = {}
        self.buffer: dict[Hashable, object] = {}
        self.flushes = 0
        self.fail_flushes = 0
        self._select = select
        self._key = key

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def write(self, item: object) -> None:
        for output in self._select(item):
            self.buffer[self._key(output)] = output

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
