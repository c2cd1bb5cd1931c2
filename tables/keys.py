"""What a shard remembers about its keys beside their values: the partition key of each
(`SharedKeys`) and which tables changed each since the last snapshot (`ChangedKeys`).

Both are kept per key rather than per table: an app keys several tables by the same ids (an
asset's rule state, usage windows and series intervals), and a map or set per table paid a
hash-table entry for each id once per table, the largest part of a shard's memory per key
after the values themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

Key: TypeAlias = str | int | tuple[str | int, ...]
"""A table key: a str, an int, or a tuple of str/int."""


class SharedKeys:
    """The partition key of every key held by a group of partitions: `pks`, shared by the
    members, which write to it directly. A key's entry is dropped when a member lets go of the
    key (`release`) and no member holds it any more (`holders`: one test per member).

    A shard groups its windowed partitions; each plain partition is a group of its own. A
    windowed table lets go of a key only when the key's last window of that table closes
    (rare while the key's records keep coming), but a plain table deletes keys on the
    record path (a table of pending outputs, every key): asking every other table then
    cost more per record than the shared map saves.

    So a key written under two partition keys, in two windowed tables, is routed by the later
    one in both: a split keeps all of the key's windows together, with the child that receives
    its records from then on."""

    __slots__ = ("holders", "pks")

    def __init__(self) -> None:
        self.pks: dict[Key, str] = {}
        # Each member's "do you hold this key": a plain table's is its dict's own (C) test.
        self.holders: list[Callable[[Key], bool]] = []

    def release(self, key: Key) -> None:
        for holds in self.holders:
            if holds(key):
                return
        self.pks.pop(key, None)


_MASKS: dict[int, int] = {}
"""Every mask stored, once: a mask of a shard's first 8 members is a small int, which CPython
shares; a larger one would otherwise be a new int object per key."""


def intern_mask(mask: int) -> int:
    """The one stored int of `mask` (`_MASKS`)."""
    return _MASKS.setdefault(mask, mask)


class ChangedKeys:
    """Which member partitions changed each key since the last snapshot took the changes:
    `marks`, key -> bitmask of the members (`join` gives each its bit), one entry per key
    whatever the number of tables that changed it.

    Members mark on every write (`mark`, or inline on their hot path: the same three steps);
    the shard takes the marks at a snapshot (`take_into`) and asks each table's keys of them
    (`keys_of`), the sets a set per table used to hold."""

    __slots__ = ("marks", "members")

    def __init__(self) -> None:
        self.marks: dict[Key, int] = {}
        self.members = 0

    def join(self) -> int:
        """A new member's bit."""
        bit = 1 << self.members
        self.members += 1
        return bit

    def mark(self, key: Key, bit: int) -> None:
        marks = self.marks
        held = marks.get(key, 0)
        if not held & bit:
            mask = held | bit
            marks[key] = _MASKS.setdefault(mask, mask)

    def mark_all(self, keys: Iterable[Key], bit: int) -> None:
        marks = self.marks
        for key in keys:
            held = marks.get(key, 0)
            if not held & bit:
                mask = held | bit
                marks[key] = _MASKS.setdefault(mask, mask)

    def forget(self, bit: int) -> None:
        """Unmark one member's changes (it was cleared as a whole)."""
        marks = self.marks
        for key in [key for key, mask in marks.items() if mask & bit]:
            left = marks[key] & ~bit
            if left:
                marks[key] = _MASKS.setdefault(left, left)
            else:
                del marks[key]

    def take_into(self, into: dict[Key, int]) -> None:
        """Move the marks into `into` (a shard's changes taken but not yet saved), or-ed with
        what it holds."""
        marks = self.marks
        if not into:
            into.update(marks)
        else:
            for key, mask in marks.items():
                held = into.get(key, 0) | mask
                into[key] = _MASKS.setdefault(held, held)
        marks.clear()


def keys_of(marks: Mapping[Key, int], bit: int) -> set[Key]:
    """The keys of `marks` (a `ChangedKeys.marks` or what `take_into` filled) marked by the
    member of `bit`."""
    return {key for key, mask in marks.items() if mask & bit}
