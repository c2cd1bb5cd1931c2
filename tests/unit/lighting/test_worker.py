"""One worker process, one copy of the registry and of the sites' homes: the app's decoder and
every shard's sinks share them, and processing records never queries DynamoDB for them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.records import TRIM_HORIZON, Record
from domain.telemetry import Reading, encode_reading
from lighting.clients import Clients
from lighting.regions import HOME_PK, SiteHome, home_item
from lighting.settings import Settings
from lighting.wiring import engine_factory
from lighting.worker import lighting_app, worker_views
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore

TS_MS = 1_795_870_800_000


class CountingDynamoDB:
    """Answers the Query of the registry (empty) and of the homes, counting the queries by
    partition key. Nothing else is called before a checkpoint."""

    def __init__(self, homes: list[SiteHome]) -> None:
        self.homes = homes
        self.queries: Counter[str] = Counter()

    def get_paginator(self, operation: str) -> CountingDynamoDB:
        assert operation == "query"
        return self

    def paginate(self, **request: Any) -> list[dict[str, Any]]:
        pk = request["ExpressionAttributeValues"][":pk"]["S"]
        self.queries[pk] += 1
        return [{"Items": [home_item(h) for h in self.homes] if pk == HOME_PK else []}]


def record(shard_id: str, sequence: int, site_id: str) -> Record:
    ts_ms = TS_MS + sequence * 60_000
    reading = Reading(
        site_id, "b1", "r1", f"{site_id}-lamp", ts_ms, 10.0, 230.0, 0.05, 300.0, True, 80
    )
    return Record(shard_id, sequence, 0, site_id, encode_reading(reading), ts_ms)


def test_one_gate_per_worker_shared_by_the_app_and_every_shards_sinks() -> None:
    settings = Settings(region="here", registry_refresh_ms=3_600_000)
    dynamodb = CountingDynamoDB([SiteHome("s-here", "here"), SiteHome("s-there", "there")])
    clients = Clients(settings)
    clients.dynamodb = dynamodb
    clients.timestream = object()
    with worker_views(settings, clients) as views:
        factory = engine_factory(
            settings,
            clients,
            lighting_app(settings, views),
            InMemoryStateStore(),
            gate=views.gate,
        )
        engines = [factory(f"shard-{n}", RecordingCheckpointer()) for n in range(3)]
        for engine in engines:
            engine.initialize(TRIM_HORIZON)
            engine.process_records(
                [
                    record(engine.shard_id, n, site)
                    for n, site in enumerate(["s-here", "s-there"] * 50)
                ]
            )
        # The registry and the homes were each loaded once, for the whole worker.
        assert dynamodb.queries == Counter({"REGISTRY": 1, HOME_PK: 1})
        # Every shard judged by that one copy: the other region's site refused, ours processed.
        assert [(e.counters.records, e.counters.bad_records) for e in engines] == [(100, 50)] * 3
        assert all(e.counters.outputs > 0 for e in engines)
