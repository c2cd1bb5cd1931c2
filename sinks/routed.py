"""`RoutedSink`: one sink in front of several, each point going to the one its route names.

The InfluxDB query model keeps the telemetry series in retention policies of their own (a
short one for the fine series, a long one for the hourly downsample) beside the events and
usage in the default one, and an InfluxDB write names one bucket (`db/rp`): so one sink per
bucket, and this router in front deciding which bucket each point goes to.

Contract (`sinks.base.Sink`): `write(item)` turns the item into points with `select` and
hands each to `parts[route(point)]` (a route the parts do not name is a programming error:
`KeyError`). `flush()` flushes the parts in their order; the first that raises `SinkError`
stops the flush (the later parts keep their buffers, the checkpoint is aborted); the next
flush writes what every part still holds.
`discard()` discards every part. `counters` are the parts' counters summed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, Protocol

from sinks.base import SinkCounters


class _Part(Protocol):
    counters: SinkCounters

    def write(self, item: object) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...


class RoutedSink:
    """Routes each point `select` derives from an output to one of `parts`."""

    def __init__(
        self,
        select: Callable[[object], Iterable[Any]],
        route: Callable[[Any], str],
        parts: Mapping[str, _Part],
    ) -> None:
        if not parts:
            raise ValueError("a RoutedSink needs at least one part")
        self._select = select
        self._route = route
        self._parts = dict(parts)

    @property
    def counters(self) -> SinkCounters:
        total = SinkCounters()
        for part in self._parts.values():
            for f in fields(SinkCounters):
                setattr(total, f.name, getattr(total, f.name) + getattr(part.counters, f.name))
        return total

    def write(self, item: object) -> None:
        parts = self._parts
        route = self._route
        for point in self._select(item):
            parts[route(point)].write(point)

    def flush(self) -> None:
        for part in self._parts.values():
            part.flush()

    def discard(self) -> None:
        for part in self._parts.values():
            part.discard()
