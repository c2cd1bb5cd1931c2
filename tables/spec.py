"""What a shard's state is built from and gives back: the tables it holds (`TableSpec`), its
counters, and a snapshot waiting to be saved."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from tables.windows import Window, WindowRange

CloseCallback: TypeAlias = Callable[[Any, WindowRange, Any], Iterable[object]]
"""`callback(key, window, value) -> events`; may be a generator. Runs in `advance()`, once per
(key, window), with `state.partition_key` set to the key's partition key."""


class TableSpec(Protocol):
    """What a ShardState needs of a table (`tables.table.Table` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def value_type(self) -> type[Any]: ...

    @property
    def window(self) -> Window | None:
        """None for a plain table."""
        ...

    @property
    def close_callbacks(self) -> Sequence[CloseCallback]: ...

    @property
    def shares_keys(self) -> bool:
        """A plain table whose partition keys go in the windowed tables' map (`share_keys`)."""
        ...

    @property
    def base(self) -> TableSpec:
        """The table itself (a windowed view answers with its table)."""
        ...


@dataclass
class ShardCounters:
    """Counts since this ShardState was created (metrics, not state: not in snapshots)."""

    late: int = 0
    """Records for which `take_late()` returned True."""
    late_updates: int = 0
    """Individual updates rejected as late (a record may make several)."""
    windows_closed: int = 0
    """(key, window) pairs closed and passed to the on_window_close callbacks."""
    windows_expired: int = 0
    """(key, window) pairs forgotten after their `expires_ms`."""
    idle_advances: int = 0
    """`advance()` calls that moved the event clock because the shard was idle."""
    snapshots: int = 0
    deltas: int = 0
    restores: int = 0


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """Bytes for the store, not yet known to be saved. `delta`: only the keys changed since
    the last saved snapshot (False: a base with every key). Give it back to `saved()` once
    the store has it."""

    data: bytes
    delta: bool
    generation: int


@dataclass
class StoredChain:
    """Where a shard's stored snapshot stands, which decides whether the next one is a base:
    one is due at the start and after a restore (`need_base`), after `max_deltas` saved
    deltas (compaction), and when a delta would make the deltas outweigh the base."""

    max_deltas: int
    need_base: bool = True
    deltas: int = 0
    delta_bytes: int = 0
    base_bytes: int = 0

    def base_due(self) -> bool:
        return self.need_base or self.deltas >= self.max_deltas

    def outweighs(self, delta: bytes) -> bool:
        return self.delta_bytes + len(delta) > self.base_bytes

    def saved(self, pending: PendingSnapshot) -> None:
        if pending.delta:
            self.deltas += 1
            self.delta_bytes += len(pending.data)
        else:
            self.need_base = False
            self.deltas = self.delta_bytes = 0
            self.base_bytes = len(pending.data)
