"""One shard's part of one plain table (key -> value), with each key's partition key and its
changes marked for the next snapshot (`tables.keys`)."""

from __future__ import annotations

from typing import Any

from tables.keys import ChangedKeys, Key, SharedKeys, keys_of

_MISSING: Any = object()


class PlainPartition:
    """key -> value, key -> partition key (`pks`: its group's, `SharedKeys`; a group of its
    own when none is given); its keys written or deleted since the last snapshot are marked
    in `changes` (`ChangedKeys`: the shard's; its own when none is given)."""

    __slots__ = ("_bit", "_changes", "_keys", "_marks", "data", "pks")

    def __init__(self, keys: SharedKeys | None = None, changes: ChangedKeys | None = None) -> None:
        self.data: dict[Key, Any] = {}
        self._keys = keys = SharedKeys() if keys is None else keys
        keys.holders.append(self.data.__contains__)
        self.pks: dict[Key, str] = keys.pks
        self._changes = changes = ChangedKeys() if changes is None else changes
        self._bit = changes.join()
        self._marks = changes.marks

    @property
    def changed(self) -> frozenset[Key]:
        """The keys written or deleted since the last snapshot took the changes (a copy: mark
        changes through the shard's `ChangedKeys`)."""
        return frozenset(keys_of(self._marks, self._bit))

    @property
    def bit(self) -> int:
        """This partition's bit in its `ChangedKeys`."""
        return self._bit

    def put(self, key: Key, value: Any, pk: str, *, keep_pk: bool = False) -> None:
        """Store ``value`` under ``key``, remembering ``pk`` as its partition key, or with
        ``keep_pk`` (a write that belongs to no record) the one it already has."""
        self.data[key] = value
        if not keep_pk or key not in self.pks:
            self.pks[key] = pk
        self._changes.mark(key, self._bit)

    def delete(self, key: Key) -> None:
        del self.data[key]
        self._keys.release(key)
        self._changes.mark(key, self._bit)

    def discard(self, key: Key) -> None:
        """Remove `key` if held, not as a change (a snapshot delta being applied)."""
        if self.data.pop(key, _MISSING) is not _MISSING:
            self._keys.release(key)

    def clear(self) -> None:
        held = list(self.data)
        self.data.clear()
        for key in held:
            self._keys.release(key)
        self._changes.forget(self._bit)
