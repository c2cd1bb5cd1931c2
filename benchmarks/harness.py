"""A `ShardEngine` with luxflow's real sinks over in-memory clients, and the loop that feeds it.

The sinks are the production wiring itself (`lighting.wiring.shard_sinks`: `DynamoDBSink`
with `views.command_writes`, `TimestreamSink` with `views.time_points`), so every output is turned
into its item (`sinks.attrvalues.to_item`) or record (`sinks.timestream.to_record`), buffered,
batched and sent as a complete request. Only the client is replaced: `NullDynamoDB` and
`NullTimestream` accept every request, count it and encode it as JSON (what goes on the wire),
without botocore's own validation and serialisation, and without a network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from core.clock import ManualClock
from core.records import TRIM_HORIZON, DeadLetter, Record
from core.retry import Backoff
from lighting.clients import Clients
from lighting.regions import home_gate
from lighting.registry import REGISTRY_PK
from lighting.settings import Settings
from lighting.wiring import engine_config, shard_sinks
from sinks.base import Sink
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore

_encode = msgspec.json.Encoder().encode


@dataclass
class RequestCounters:
    """What the in-memory clients received, over every shard of a run."""

    calls: int = 0
    items: int = 0
    request_bytes: int = 0
    by_call: dict[str, int] = field(default_factory=dict)
    write_units: dict[str, int] = field(default_factory=dict)
    """DynamoDB write request units (1 KB each, rounded up per item), by kind of item."""
    timestream_units: int = 0
    """Timestream 1 KB write units (request bytes rounded up per request)."""
    item_count: dict[str, int] = field(default_factory=dict)
    item_bytes: dict[str, int] = field(default_factory=dict)
    """DynamoDB items written and their bytes (`item_bytes`), by kind of item."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """The sinks send a flush's conditional puts from a thread pool: without it, two threads
    adding to the same count lost one of the additions (12,086 PutItem counted of 12,315)."""

    def count(self, call: str, items: int, request: dict[str, Any]) -> int:
        size = len(_encode(request))
        with self._lock:
            self.calls += 1
            self.items += items
            self.by_call[call] = self.by_call.get(call, 0) + 1
            self.request_bytes += size
        return size

    def timestream_request(self, size: int) -> None:
        with self._lock:
            self.timestream_units += -(-size // 1024)

    def dynamodb_item(self, item: dict[str, Any]) -> None:
        kind, units, size = item_kind(item), write_units(item), item_bytes(item)
        with self._lock:
            self.write_units[kind] = self.write_units.get(kind, 0) + units
            self.item_count[kind] = self.item_count.get(kind, 0) + 1
            self.item_bytes[kind] = self.item_bytes.get(kind, 0) + size


def item_kind(item: dict[str, Any]) -> str:
    """What a command-table item is, by its partition key (see `domain.views`)."""
    pk = str(item.get("pk", {}).get("S", ""))
    if pk == REGISTRY_PK:
        return "registry"
    if pk.startswith("ASSET#"):
        return "current_state"
    if pk.startswith(("BLDG#", "SPIKE#")):
        return "events"
    return "usage"


def item_bytes(value: Any) -> int:
    """DynamoDB's size of an item or attribute value (names + values; numbers ~ digits / 2)."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag in ("S", "B"):
            return len(inner.encode()) if isinstance(inner, str) else len(inner)
        if tag == "N":
            return len(inner) // 2 + 2
        if tag in ("BOOL", "NULL"):
            return 1
        if tag == "M":
            return 3 + sum(len(k) + item_bytes(v) for k, v in inner.items())
        if tag == "L":
            return 3 + sum(1 + item_bytes(v) for v in inner)
    return sum(len(k) + item_bytes(v) for k, v in value.items())


def write_units(item: dict[str, Any]) -> int:
    return -(-item_bytes(item) // 1024)


class _EmptyPages:
    def paginate(self, **_request: Any) -> list[dict[str, Any]]:
        return [{"Items": []}]


class NullDynamoDB:
    """Accepts BatchWriteItem and PutItem requests; stores nothing, never fails. Reads find
    nothing (an empty command table: no site homes, so the DR gate lets every site through)."""

    def __init__(self, counters: RequestCounters) -> None:
        self._counters = counters

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        items = sum(len(v) for v in request["RequestItems"].values())
        self._counters.count("BatchWriteItem", items, request)
        for writes in request["RequestItems"].values():
            for write in writes:
                if "PutRequest" in write:
                    self._counters.dynamodb_item(write["PutRequest"]["Item"])
        return {"UnprocessedItems": {}}

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._counters.count("PutItem", 1, request)
        self._counters.dynamodb_item(request["Item"])
        return {}

    def get_paginator(self, _operation: str) -> _EmptyPages:
        return _EmptyPages()

    def query(self, **_request: Any) -> dict[str, Any]:
        return {"Items": []}

    def get_item(self, **_request: Any) -> dict[str, Any]:
        return {}


class NullTimestream:
    """Accepts WriteRecords requests; stores nothing, never fails."""

    def __init__(self, counters: RequestCounters) -> None:
        self._counters = counters

    def write_records(self, **request: Any) -> dict[str, Any]:
        size = self._counters.count("WriteRecords", len(request["Records"]), request)
        self._counters.timestream_request(size)
        return {"RecordsIngested": {"Total": len(request["Records"])}}


def _dead_letter_key(item: object) -> object:
    if isinstance(item, DeadLetter):
        return (item.shard_id, item.sequence_number, item.origin, item.detail_key)
    return id(item)


class NullClients:
    """The `lighting.clients.Clients` of the benchmark: the null clients, counting requests."""

    def __init__(self, counters: RequestCounters) -> None:
        # The null clients have the methods the sinks call; Any stands in for boto3's types.
        self.dynamodb: Any = NullDynamoDB(counters)
        self.timestream: Any = NullTimestream(counters)


def _no_sleep_backoff() -> Backoff:
    return Backoff(sleep=lambda _s: None)


def null_sinks(
    settings: Settings,
    counters: RequestCounters,
    dead_letter: Sink,
    shard_id: str,
    clock: Callable[[], int],
) -> list[Sink]:
    """The production sinks of one shard (`lighting.wiring.shard_sinks`) over null clients."""
    clients = cast(Clients, NullClients(counters))
    gate = home_gate(settings, clients, background=False)  # no homes: every site passes
    return shard_sinks(
        settings, clients, dead_letter, shard_id, gate, backoff=_no_sleep_backoff, now_ms=clock
    )


def build_engine(
    app: App,
    shard_id: str,
    counters: RequestCounters,
    clock: Callable[[], int],
    *,
    with_sinks: bool = True,
    settings: Settings | None = None,
    state_store: InMemoryStateStore | None = None,
) -> ShardEngine:
    """One shard's engine with the production sinks of `lighting.wiring.shard_sinks` over the
    null clients, an in-memory state store and checkpointer. Dead letters stay in memory (the
    input has none). `with_sinks=False` leaves the outputs unwritten (the engine alone)."""
    settings = settings or Settings()
    dead_letter = InMemorySink(key=_dead_letter_key)
    sinks = null_sinks(settings, counters, dead_letter, shard_id, clock) if with_sinks else []
    return ShardEngine(
        app,
        shard_id,
        sinks=sinks,
        dead_letter=dead_letter,
        state_store=state_store if state_store is not None else InMemoryStateStore(),
        checkpointer=RecordingCheckpointer(),
        config=engine_config(settings),
        now_ms=clock,
    )


@dataclass
class RunResult:
    records: int
    cpu_s: float
    wall_s: float
    outputs: int
    checkpoints: int
    bad_records: int
    late_records: int
    requests: RequestCounters

    @property
    def records_per_cpu_s(self) -> float:
        return self.records / self.cpu_s if self.cpu_s > 0 else float("inf")


Plan = list[list[tuple[int, list[Record]]]]
"""Checkpoint intervals, each a list of (shard index, records for one `process()` call)."""


def plan(
    records: Sequence[Record],
    shard_of: Callable[[Record], int],
    shards: int,
    *,
    batch: int = 500,
    checkpoint_every: int = 5_000,
) -> Plan:
    """Cut the stream (worker-wide time order) into checkpoint intervals of
    `checkpoint_every` records, standing in for the 5 s checkpoint interval (5,000 is 5 s of
    one shard at its 1,000 records/s). Within an interval each shard gets its own records, in
    order, in `process()` calls of at most `batch`. So more shards means the same records in
    smaller per-shard batches over the same time, as in a worker: the per-shard overhead."""
    ids = [f"shardId-{i:012d}" for i in range(shards)]
    replace = msgspec.structs.replace
    out: Plan = []
    for lo in range(0, len(records), checkpoint_every):
        per_shard: list[list[Record]] = [[] for _ in range(shards)]
        for record in records[lo : lo + checkpoint_every]:
            index = shard_of(record)
            per_shard[index].append(replace(record, shard_id=ids[index]))
        out.append(
            [
                (index, mine[b : b + batch])
                for index, mine in enumerate(per_shard)
                for b in range(0, len(mine), batch)
            ]
        )
    return out


def run_pipeline(
    build_app: Callable[[], App],
    shards: int,
    intervals: Plan,
    *,
    with_sinks: bool = True,
    counters: RequestCounters | None = None,
) -> RunResult:
    """Run a plan: per interval, every shard's batches through that shard's own engine, then
    every engine checkpoints (flush sinks -> snapshot state -> checkpoint), as the engines of
    one worker would over the same stretch of time. Engines are built before the clock
    starts; the final checkpoint is measured. `counters` receives every request sent."""
    app = build_app()
    counters = counters if counters is not None else RequestCounters()
    first = next((chunk[0] for interval in intervals for _, chunk in interval if chunk), None)
    # Processing time stands still: windows then close by event time only, so every run of
    # the same input does the same work.
    clock = ManualClock(first.arrival_ms if first is not None else 0)
    engines = [
        build_engine(app, f"shardId-{i:012d}", counters, clock, with_sinks=with_sinks)
        for i in range(shards)
    ]
    for engine in engines:
        engine.initialize(TRIM_HORIZON)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for interval in intervals:
        for index, chunk in interval:
            engines[index].process_records(chunk)
        for engine in engines:
            engine.checkpoint.commit()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    return RunResult(
        records=sum(e.counters.records for e in engines),
        cpu_s=cpu_s,
        wall_s=wall_s,
        outputs=sum(e.counters.outputs for e in engines),
        checkpoints=sum(e.counters.checkpoints for e in engines),
        bad_records=sum(e.counters.bad_records for e in engines),
        late_records=sum(e.counters.late_records for e in engines),
        requests=counters,
    )
