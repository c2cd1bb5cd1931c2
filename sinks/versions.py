"""Both models only move forward, by one rule: the version of the event.

An event with one identity (a usage report of one scope and window, a fault episode, an
asset's current state, a spike) can reach the stores in several versions: a report rebuilt from
part of its window (a replay from a later start, a takeover that saw part of a window), a
fault cleared and re-opened, an older state replayed. Whatever the order they arrive in, every
store ends up holding the highest version, and a lower one is a no-op (never a dead letter):

- **command model (DynamoDB)**: the put is conditional on the version field
  (`sinks.dynamodb`: "no item yet, or the stored one is older"); equal versions keep the first.
- **query model, Timestream**: the record's `Version` derives from the event's version
  (`VersionedPoint.version`), so the service itself upserts a higher one and refuses a lower
  one; a refusal naming an `ExistingVersion` at or above ours is a no-op (`stale_skipped`).
- **query model, InfluxDB**: InfluxDB has no conditional write (a point with the same series
  and time overwrites). Its points are a projection of the command model: a point is not
  written when the command model proved a higher version of its event stored (the failed
  conditional put returns the stored item, so "older" and "equal" are told apart), and the
  stored version's point is written in its place (`lighting.wiring.superseded_by`), so the
  query store gets what the command model holds even if it never had it.

Why the projection and not the alternatives: reading InfluxDB before every write costs a query
per point and still races a concurrent writer; a version tag in InfluxDB would put every
version in front of every reader. The projection costs nothing extra: the conditional put is
made anyway, and `ReturnValuesOnConditionCheckFailure` adds no write units. Timestream gets
the versions as well, because its `Version` is the store's own, atomic guard.

Failure between the two writes: a crash after DynamoDB accepted a report and before the query
store wrote it leaves the checkpoint unwritten, so the report is made again; DynamoDB then
finds an **equal** version stored, which is not "superseded", so the point is written. Only a
strictly higher stored version suppresses a point.

What remains: two workers processing one shard at once (a lease stolen mid-flush) can still
interleave "DynamoDB accepted" and "InfluxDB wrote", so InfluxDB may keep the lower of their two
reports until the window is written again; Timestream's `Version` closes that race. The
projection reads the local replica of the command model (a DR region writes the fuller report
replicated to it into its own query store, once something re-makes that report's event).

How the pieces meet, per shard: `Superseded` is filled by the command-model sink while it
flushes (it flushes first: the shard's sinks are flushed in order) and read and cleared by the
query-model sink's flush (`forward_only`); query points carry their event's version as
`VersionedPoint`. Points of events that have no version (a fault's points, each keyed by the
time of its status, are immutable facts) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

PointIdentity = tuple[str, tuple[tuple[str, str], ...], str, int]
"""What identifies a query-model point in both stores: table, dimensions, measure name, time."""


class VersionedPoint(msgspec.Struct, frozen=True, gc=False):
    """A query-model point with the identity (`event_id`) and version (`order`) of the event
    it was made from. `order` is on the command model's scale (the value of its newer-than
    field: `covered_ms` of a usage report, a spike's revision)."""

    table: str
    dimensions: dict[str, str]
    measure_name: str
    measures: dict[str, float | int | str | bool]
    time_ms: int
    event_id: str
    order: int

    @property
    def version(self) -> int:
        """Timestream's `Version`: `order + 1`, so it is never below the 1 that unversioned
        records (and records written before versions existed) carry."""
        return self.order + 1


class Point(Protocol):
    """What `forward_only` reads of a point: its identity (a `VersionedPoint` also has
    `event_id` and `order`; other points are never dropped)."""

    @property
    def table(self) -> str: ...

    @property
    def dimensions(self) -> Mapping[str, str]: ...

    @property
    def measure_name(self) -> str: ...

    @property
    def time_ms(self) -> int: ...


def point_identity(point: Point) -> PointIdentity:
    return (
        point.table,
        tuple(sorted(point.dimensions.items())),
        point.measure_name,
        point.time_ms,
    )


class Superseded:
    """The event versions the command model proved superseded, for one shard: an event
    identity and the highest version known to be below what is stored."""

    def __init__(self) -> None:
        self._below: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._below)

    def note(self, event_id: str, order: int) -> None:
        """A version of `event_id` higher than `order` is stored (or about to be)."""
        if order > self._below.get(event_id, order - 1):
            self._below[event_id] = order

    def covers(self, event_id: str, order: int) -> bool:
        """Whether version `order` of `event_id` is known to be superseded."""
        below = self._below.get(event_id)
        return below is not None and order <= below

    def clear(self) -> None:
        self._below.clear()


def forward_only(points: Sequence[Point], superseded: Superseded | None) -> set[int]:
    """Indices of the `points` not to write: a versioned point whose event version is
    `superseded`, or that another point in `points` of the same event, with the same identity
    and a higher version, replaces. Equal versions are all kept (they carry equal values)."""
    best: dict[tuple[str, str, str, int], int] = {}
    for point in points:
        if isinstance(point, VersionedPoint):
            # One event's points share its dimensions: the rest of the identity tells them apart.
            key = (point.event_id, point.table, point.measure_name, point.time_ms)
            best[key] = max(point.order, best.get(key, point.order))
    if not best:
        return set()
    stale: set[int] = set()
    for index, point in enumerate(points):
        if not isinstance(point, VersionedPoint):
            continue
        key = (point.event_id, point.table, point.measure_name, point.time_ms)
        if point.order < best[key] or (
            superseded is not None and superseded.covers(point.event_id, point.order)
        ):
            stale.add(index)
    return stale
