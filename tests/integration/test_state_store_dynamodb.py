"""DynamoDBStateStore against a moto server over real HTTP with real boto3."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from core.errors import StateStoreError
from core.records import Position
from core.retry import Backoff
from tables.store import CHUNK_PREFIX, DynamoDBStateStore, Snapshot, ensure_table

pytestmark = pytest.mark.integration

BIG_SEQ = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898


def _no_sleep_backoff() -> Backoff:
    return Backoff(base_ms=1, cap_ms=2, max_attempts=3, sleep=lambda _s: None)


@pytest.fixture
def store(aws: Callable[[str], Any], unique_name: Callable[[str], str]) -> DynamoDBStateStore:
    client = aws("dynamodb")
    name = unique_name("state")
    ensure_table(client, name)
    ensure_table(client, name)  # idempotent
    return DynamoDBStateStore(client, name, _no_sleep_backoff())


def _items(store: DynamoDBStateStore, shard_id: str) -> list[str]:
    kwargs: dict[str, Any] = {
        "TableName": store.table_name,
        "KeyConditionExpression": "shard_id = :s",
        "ExpressionAttributeValues": {":s": {"S": shard_id}},
        "ProjectionExpression": "#i",
        "ExpressionAttributeNames": {"#i": "item"},
    }
    found: list[str] = []
    while True:
        response = store._client.query(**kwargs)
        found += [item["item"]["S"] for item in response["Items"]]
        if "LastEvaluatedKey" not in response:
            return found
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def test_load_of_unknown_shard_is_none(store: DynamoDBStateStore) -> None:
    assert store.load("shardId-000000000000") is None


def test_one_megabyte_round_trip_is_chunked(store: DynamoDBStateStore) -> None:
    data = os.urandom(1_000_000)
    snap = Snapshot("shard-1", Position(BIG_SEQ, 3), 1_700_000_000_000, data, final=False)
    store.save("shard-1", snap)
    assert store.load("shard-1") == snap
    chunk_items = [i for i in _items(store, "shard-1") if i.startswith(CHUNK_PREFIX)]
    assert len(chunk_items) == 4  # ceil(1_000_000 / 300_000)


def test_second_save_replaces_and_removes_old_chunks(store: DynamoDBStateStore) -> None:
    store.save("s", Snapshot("s", Position(1), 1, os.urandom(700_000)))
    second = Snapshot("s", None, 2, b"small", final=True)
    store.save("s", second)
    assert store.load("s") == second
    assert len([i for i in _items(store, "s") if i.startswith(CHUNK_PREFIX)]) == 1


def test_empty_snapshot_round_trip(store: DynamoDBStateStore) -> None:
    snap = Snapshot("s", Position(5, 0), 9, b"")
    store.save("s", snap)
    assert store.load("s") == snap


def test_crash_between_chunk_writes_still_loads_the_old_snapshot(
    store: DynamoDBStateStore,
) -> None:
    old = Snapshot("s", Position(10), 1, os.urandom(650_000))
    store.save("s", old)
    # A save that died after writing some chunks of a new version, before the head switch.
    store.write_chunks("s", "deadbeef" * 4, os.urandom(400_000))
    assert store.load("s") == old
    # The next save removes the orphans.
    new = Snapshot("s", Position(11), 2, b"new")
    store.save("s", new)
    assert store.load("s") == new
    assert [i for i in _items(store, "s") if "deadbeef" in i] == []


def test_a_concurrent_writer_loses_the_head_switch(store: DynamoDBStateStore) -> None:
    store.save("s", Snapshot("s", Position(1), 1, b"one"))
    stale = DynamoDBStateStore(store._client, store.table_name, _no_sleep_backoff())
    real_head = stale._head

    def head_read_before_the_other_save(shard_id: str) -> dict[str, Any] | None:
        head = real_head(shard_id)
        store.save("s", Snapshot("s", Position(2), 2, b"two"))  # the other writer wins
        return head

    stale._head = head_read_before_the_other_save  # type: ignore[method-assign]
    with pytest.raises(StateStoreError, match="another writer"):
        stale.save("s", Snapshot("s", Position(3), 3, b"three"))
    loaded = store.load("s")
    assert loaded is not None
    assert loaded.data == b"two"


def test_delete_and_delete_all(store: DynamoDBStateStore) -> None:
    for shard in ("a", "b", "c"):
        store.save(shard, Snapshot(shard, Position(1), 1, os.urandom(310_000)))
    store.delete("a")
    assert store.load("a") is None
    assert _items(store, "a") == []
    assert store.load("b") is not None
    store.delete_all()
    assert store.load("b") is None
    assert store.load("c") is None
    assert store._client.scan(TableName=store.table_name)["Count"] == 0


def test_missing_table_raises_state_store_error(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    store = DynamoDBStateStore(aws("dynamodb"), unique_name("absent"), _no_sleep_backoff())
    with pytest.raises(StateStoreError):
        store.load("s")
