"""DynamoDBSink against a moto server over HTTP, with throttling and partial batch failures
injected by tests.support.faulty (the emulator produces neither)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from core.errors import SinkError
from core.retry import Backoff
from domain import views
from domain.events import AssetState, Fault
from sinks.attrvalues import from_item
from sinks.dynamodb import DynamoDBSink
from sinks.provision import ensure_command_table
from tests.support.faulty import FaultyClient

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Put:
    item: Mapping[str, object]
    newer_than_field: str | None = None


def as_writes(output: object) -> Iterable[Put]:
    """The app's `select`: here every output already is a write; others are ignored."""
    return [output] if isinstance(output, Put) else []


def no_sleep(backoff_attempts: int = 10) -> Backoff:
    return Backoff(max_attempts=backoff_attempts, rng=random.Random(0), sleep=lambda _s: None)


def scan(client: Any, table: str) -> dict[tuple[str, str], dict[str, object]]:
    items: dict[tuple[str, str], dict[str, object]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for raw in page["Items"]:
            item = from_item(raw)
            items[(str(item["pk"]), str(item["sk"]))] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def usage(n: int, version: int = 0) -> Put:
    return Put(
        {
            "pk": f"ROOM#r{n % 7}",
            "sk": f"USAGE#{n:05d}",
            "wh": n * 0.1 + version,
            "samples": n,
            "version": version,
        }
    )


@pytest.fixture
def ddb(aws: Callable[[str], Any]) -> Any:
    return aws("dynamodb")


@pytest.fixture
def table(ddb: Any, unique_name: Callable[[str], str]) -> str:
    name = unique_name("cmd")
    ensure_command_table(ddb, name)
    return name


def sent_puts(requests: list[dict[str, Any]]) -> list[Any]:
    return [
        entry["PutRequest"]["Item"]
        for request in requests
        for entries in request["RequestItems"].values()
        for entry in entries
    ]


def key_of(attributes: dict[str, Any]) -> tuple[str, str]:
    return (attributes["pk"]["S"], attributes["sk"]["S"])


def put_id(attributes: dict[str, Any]) -> tuple[tuple[str, str], str]:
    return (key_of(attributes), attributes["version"]["N"])


def test_exact_items_with_throttling_and_partial_failures(ddb: Any, table: str) -> None:
    faulty = (
        FaultyClient(ddb, seed=11).throttle("batch_write_item", 2).partial("batch_write_item", 4)
    )
    sink = DynamoDBSink(faulty, table, as_writes, no_sleep())
    expected: dict[tuple[str, str], dict[str, object]] = {}
    for n in range(80):
        sink.write(usage(n))
        expected[(f"ROOM#r{n % 7}", f"USAGE#{n:05d}")] = dict(usage(n).item)
    for n in range(0, 80, 9):  # later writes of a key win, even inside one buffer
        sink.write(usage(n, version=1))
        expected[(f"ROOM#r{n % 7}", f"USAGE#{n:05d}")] = dict(usage(n, version=1).item)
    sink.write("not for this sink")
    sink.flush()

    assert scan(ddb, table) == expected
    assert sink.buffered == 0

    log = faulty.log
    requests = faulty.requests["batch_write_item"]
    assert len(log) == len(requests)
    assert [outcome for _, outcome, _ in log].count("throttled") == 2
    assert [outcome for _, outcome, _ in log].count("partial") == 4
    for i, (_, outcome, held) in enumerate(log):
        if outcome == "throttled":  # the whole call is repeated as it was
            assert requests[i + 1] == requests[i]
        if outcome == "partial":  # exactly the unprocessed subset is re-sent, nothing else
            assert sent_puts([requests[i + 1]]) == [e["PutRequest"]["Item"] for e in held]
    # Every request carried distinct keys, and the service saw every key exactly once.
    for request in requests:
        keys = [key_of(item) for item in sent_puts([request])]
        assert len(keys) == len(set(keys)) <= 25
    # No put reached the service twice: what was sent minus what was handed back unprocessed.
    # (A key can arrive twice with different versions: a batch of 25 goes out early.)
    reached_service = Counter(
        put_id(item)
        for i, request in enumerate(requests)
        if log[i][1] != "throttled"
        for item in sent_puts([request])
    )
    reached_service.subtract(
        put_id(e["PutRequest"]["Item"]) for e in faulty.held_back["batch_write_item"]
    )
    assert set(reached_service.values()) == {1}
    assert {key for key, _ in reached_service} == set(expected)

    assert sink.counters.items_written == sum(reached_service.values())
    assert sink.counters.throttles == 2
    assert sink.counters.unprocessed == len(faulty.held_back["batch_write_item"])
    assert sink.counters.retries == 6


def test_a_full_batch_is_written_early_from_write(ddb: Any, table: str) -> None:
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep())
    for n in range(24):
        sink.write(usage(n))
    assert scan(ddb, table) == {}
    sink.write(usage(24))
    assert len(scan(ddb, table)) == 25 and sink.buffered == 0
    sink.write(usage(25))
    assert sink.buffered == 1
    sink.flush()
    assert len(scan(ddb, table)) == 26


def test_a_failed_early_batch_stays_buffered_for_flush(ddb: Any, table: str) -> None:
    faulty = FaultyClient(ddb).throttle("batch_write_item", 3)
    sink = DynamoDBSink(faulty, table, as_writes, no_sleep(backoff_attempts=3))
    for n in range(30):
        sink.write(usage(n))  # the early batch is throttled past its attempts: no exception
    assert sink.buffered == 30 and scan(ddb, table) == {}
    sink.flush()
    assert len(scan(ddb, table)) == 30 and sink.buffered == 0


def test_a_failed_flush_keeps_the_unwritten_items(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("cmd")
    sink = DynamoDBSink(ddb, name, as_writes, no_sleep())
    for n in range(30):
        sink.write(usage(n))  # the table does not exist yet: early batch fails, nothing lost
    with pytest.raises(SinkError, match="ResourceNotFoundException"):
        sink.flush()
    assert sink.buffered == 30
    ensure_command_table(ddb, name)
    sink.flush()
    assert len(scan(ddb, name)) == 30


def test_unprocessed_past_the_attempt_budget_is_a_sink_error(ddb: Any, table: str) -> None:
    faulty = FaultyClient(ddb, seed=2).partial("batch_write_item", 3)
    sink = DynamoDBSink(faulty, table, as_writes, no_sleep(backoff_attempts=3))
    for n in range(10):
        sink.write(usage(n))
    with pytest.raises(SinkError, match="unprocessed"):
        sink.flush()
    assert sink.buffered == 10  # part of the batch landed, but nothing is cleared unwritten
    sink.flush()
    assert len(scan(ddb, table)) == 10


def state(asset: str, ts_ms: int, level: float) -> Put:
    return Put(
        {"pk": f"ASSET#{asset}", "sk": "STATE", "ts_ms": ts_ms, "level": level},
        newer_than_field="ts_ms",
    )


def test_current_state_never_moves_backwards(ddb: Any, table: str) -> None:
    faulty = FaultyClient(ddb).throttle("put_item", 2)
    sink = DynamoDBSink(faulty, table, as_writes, no_sleep())
    sink.write(state("a1", 2_000, 0.8))
    sink.flush()
    sink.write(state("a1", 1_000, 0.1))  # older: must not replace
    sink.write(state("a2", 5_000, 0.5))
    sink.flush()
    stored = scan(ddb, table)
    assert stored[("ASSET#a1", "STATE")]["ts_ms"] == 2_000
    assert stored[("ASSET#a1", "STATE")]["level"] == 0.8
    assert stored[("ASSET#a2", "STATE")]["ts_ms"] == 5_000
    assert sink.counters.stale_skipped == 1 and sink.counters.throttles == 2

    sink.write(state("a1", 2_000, 0.3))  # equal: the stored one stays
    sink.flush()
    assert scan(ddb, table)[("ASSET#a1", "STATE")]["level"] == 0.8
    sink.write(state("a1", 3_000, 0.9))  # newer: replaces
    sink.flush()
    assert scan(ddb, table)[("ASSET#a1", "STATE")]["level"] == 0.9


def test_conditional_writes_coalesce_in_the_buffer_to_the_newest(ddb: Any, table: str) -> None:
    faulty = FaultyClient(ddb)
    sink = DynamoDBSink(faulty, table, as_writes, no_sleep())
    for ts_ms, level in [(3_000, 0.3), (9_000, 0.9), (1_000, 0.1)]:
        sink.write(state("a1", ts_ms, level))
    assert sink.buffered == 1
    sink.flush()
    assert len(faulty.requests["put_item"]) == 1
    assert scan(ddb, table)[("ASSET#a1", "STATE")]["ts_ms"] == 9_000


def test_discard_drops_the_buffer(ddb: Any, table: str) -> None:
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep())
    sink.write(usage(1))
    sink.write(state("a1", 1, 1.0))
    sink.discard()
    sink.flush()
    assert scan(ddb, table) == {}


def test_an_item_without_its_key_is_refused(ddb: Any, table: str) -> None:
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep())
    with pytest.raises(SinkError, match="key field"):
        sink.write(Put({"pk": "x"}))


# -- coalescing: the current state of an asset, as the app writes it ---------------------


def asset_state(asset: str, ts_ms: int, power_w: float) -> AssetState:
    return AssetState("s1", "b1", "r1", asset, ts_ms, power_w, True, 60)


def coalescing_sink(client: Any, table: str, backoff: Backoff | None = None) -> DynamoDBSink:
    return DynamoDBSink(
        client,
        table,
        views.command_writes,
        backoff or no_sleep(),
        coalesce=views.current_state_key,
    )


def test_coalesced_states_store_exactly_what_writing_each_would(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    rng = random.Random(5)
    outputs: list[object] = [
        asset_state(f"a{rng.randrange(6)}", rng.randrange(1, 40) * 1_000, rng.random() * 90)
        for _ in range(200)
    ]
    outputs[50:50] = [Fault("s1", "b1", "r1", "a1", "E1", 7_000), "not for this sink"]
    tables = []
    for coalesce in (False, True):
        name = unique_name("cmd")
        ensure_command_table(ddb, name)
        tables.append(name)
        plain = DynamoDBSink(ddb, name, views.command_writes, no_sleep())
        sink = coalescing_sink(ddb, name) if coalesce else plain
        for n, output in enumerate(outputs):
            sink.write(output)
            if n % 70 == 69:
                sink.flush()
        sink.flush()
        assert sink.buffered == 0

    each, coalesced = (scan(ddb, name) for name in tables)
    assert coalesced == each
    assert len(each) == 7  # six assets and the fault
    for item in each.values():  # the newest state of each asset, the first of equal ones
        if item["type"] == "asset_state":
            states = [o for o in outputs if isinstance(o, AssetState)]
            newest = max(o.ts_ms for o in states if f"ASSET#{o.asset_id}" == item["pk"])
            first = next(o for o in states if o.ts_ms == newest and o.asset_id == item["asset_id"])
            assert item["ts_ms"] == newest and item["power_w"] == first.power_w


def test_coalescing_builds_one_put_per_asset_and_flush(ddb: Any, table: str) -> None:
    faulty = FaultyClient(ddb)
    sink = coalescing_sink(faulty, table)
    for ts_ms, power_w in [(3_000, 3.0), (9_000, 9.0), (1_000, 1.0), (9_000, 99.0)]:
        sink.write(asset_state("a1", ts_ms, power_w))
    sink.write(asset_state("a2", 5_000, 5.0))
    assert sink.buffered == 2
    sink.flush()
    assert len(faulty.requests["put_item"]) == 2
    stored = scan(ddb, table)
    assert stored[("ASSET#a1", "STATE")]["ts_ms"] == 9_000
    assert stored[("ASSET#a1", "STATE")]["power_w"] == 9.0  # equal versions keep the first
    assert stored[("ASSET#a2", "STATE")]["power_w"] == 5.0


def test_coalesced_states_never_move_backwards_across_flushes(ddb: Any, table: str) -> None:
    sink = coalescing_sink(ddb, table)
    sink.write(asset_state("a1", 5_000, 5.0))
    sink.flush()
    sink.write(asset_state("a1", 4_000, 4.0))  # older than the stored one: skipped
    sink.write(asset_state("a2", 1_000, 1.0))  # a new key in a later flush is not lost
    sink.flush()
    sink.write(asset_state("a1", 6_000, 6.0))
    sink.flush()
    stored = scan(ddb, table)
    assert stored[("ASSET#a1", "STATE")]["power_w"] == 6.0
    assert stored[("ASSET#a2", "STATE")]["power_w"] == 1.0
    assert sink.counters.stale_skipped == 1 and sink.counters.items_written == 3


def test_a_failed_coalesced_flush_keeps_the_buffer(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("cmd")
    sink = coalescing_sink(ddb, name)
    for n in range(5):
        sink.write(asset_state(f"a{n}", 1_000 + n, float(n)))
    sink.write(asset_state("a0", 9_000, 90.0))
    with pytest.raises(SinkError, match="ResourceNotFoundException"):
        sink.flush()  # the table does not exist yet
    assert sink.buffered == 5
    sink.write(asset_state("a1", 500, 0.5))  # older than the buffered a1: does not replace it
    ensure_command_table(ddb, name)
    sink.flush()
    stored = scan(ddb, name)
    assert {key: item["power_w"] for key, item in stored.items()} == {
        ("ASSET#a0", "STATE"): 90.0,
        ("ASSET#a1", "STATE"): 1.0,
        ("ASSET#a2", "STATE"): 2.0,
        ("ASSET#a3", "STATE"): 3.0,
        ("ASSET#a4", "STATE"): 4.0,
    }
    assert sink.buffered == 0


def test_an_output_that_cannot_be_stored_fails_the_flush_and_stays(ddb: Any, table: str) -> None:
    sink = coalescing_sink(ddb, table)
    sink.write(asset_state("a1", 1_000, float("nan")))
    with pytest.raises(SinkError, match="cannot store"):
        sink.flush()
    assert sink.buffered == 1
    sink.write(asset_state("a1", 2_000, 2.0))  # a newer state replaces it
    sink.flush()
    assert scan(ddb, table)[("ASSET#a1", "STATE")]["power_w"] == 2.0


def test_discard_drops_coalesced_outputs(ddb: Any, table: str) -> None:
    sink = coalescing_sink(ddb, table)
    sink.write(asset_state("a1", 1_000, 1.0))
    sink.discard()
    assert sink.buffered == 0
    sink.flush()
    assert scan(ddb, table) == {}
