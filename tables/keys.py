"""What a shard remembers about its keys beside their values: the partition key of each
(`SharedKeys`) and which tables changed each since the last snapshot (`ChangedKeys`).

Both are kept per key rather than per table: an app keys several tables by the same ids (an
asset's rule state, usage windows and series intervals), and a map or set per table paid a
hash-table entry for each id once per table, the largest part of a shard's memory per key
after the values themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, TypeAlias

import orjson

Key: TypeAlias = str | int | tuple[str | int, ...]
"""A table key: a str, an int, or a tuple of str/int."""


def in_key_order(keys: Iterable[Key]) -> list[Key]:
    """The one order in which a table's keys are iterated and its windows closed. Insertion
    order would not do: a shard restored from a snapshot holds its keys in the snapshot's
    order, and an agent that sums or counts across keys (room totals of asset windows, the
    flood guard's first N faults of an offline sweep) must meet them in the order an
    uninterrupted run does, to the last bit. Keys all str or all int sort as they are (fast:
    the offline sweep sorts every asset once a minute of event time); any other mix sorts by
    the keys' JSON form, total over every key type. Which of the two applies depends on the
    set of keys only, so the order does too."""
    listed = list(keys)
    if all(type(key) is str for key in listed) or all(type(key) is int for key in listed):
        return sorted(listed)
    return sorted(listed, key=orjson.dumps)


MAX_SHARED_PKS: Final = 100_000
"""Distinct partition keys a shard shares one copy of (`shared_pk`); past this it starts over."""


def shared_pk(shared: dict[str, str], pk: str) -> str:
    """The one copy of `pk` in `shared` that a shard's keys remember (added when new).
    Partition keys come from outside: past `MAX_SHARED_PKS` the map starts over, since
    sharing only saves memory and an unbounded map would not."""
    held = shared.get(pk)
    if held is None:
        if len(shared) >= MAX_SHARED_PKS:
            shared.clear()
        held = shared[pk] = pk
    return held


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


class WindowChanges:
    """What changed in one windowed partition beyond its keys' marks, so that a delta can
    carry only the windows that changed rather than every window of each changed key:

    - `touched`: ranges written, or closed and kept, since the changes were last taken (a
      changed key's values in these ranges are what changed of it);
    - `dropped`: ranges gone whole (closed and not kept, or expired);
    - `replaced`: keys that lost a window some other way (a session absorbed it, `take_before`
      took it): a delta carries all of such a key's windows, replacing what it had.

    A handful of ranges a checkpoint, and the rare replaced key: small next to the marks."""

    __slots__ = ("dropped", "replaced", "touched")

    def __init__(self) -> None:
        self.touched: set[tuple[int, int]] = set()
        self.dropped: set[tuple[int, int]] = set()
        self.replaced: set[Key] = set()

    def take_into(self, into: WindowChanges) -> None:
        """Move these changes into `into` (changes taken but not yet saved), or-ed with what it
        holds. The sets stay the same objects: the partition's hot path holds them."""
        into.touched |= self.touched
        into.dropped |= self.dropped
        into.replaced |= self.replaced
        self.clear()

    def clear(self) -> None:
        self.touched.clear()
        self.dropped.clear()
        self.replaced.clear()
