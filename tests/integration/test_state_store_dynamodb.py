"""DynamoDBStateStore against a moto server over real HTTP with real boto3."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from core.errors import LeaseLostError, StateStoreError
from core.records import LeaseFence, Position
from core.retry import Backoff
from tables.dynamodb import CHUNK_PREFIX, DynamoDBStateStore, ensure_table
from tables.store import Snapshot, StoredState

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


def stored(snap: Snapshot, *deltas: Snapshot) -> StoredState:
    last = deltas[-1] if deltas else snap
    return StoredState(
        snap.shard_id,
        last.position,
        last.saved_at_ms,
        snap.data,
        tuple(d.data for d in deltas),
        last.final,
    )


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
    assert store.load("shard-1") == stored(snap)
    chunk_items = [i for i in _items(store, "shard-1") if i.startswith(CHUNK_PREFIX)]
    assert len(chunk_items) == 4  # ceil(1_000_000 / 300_000)


def test_second_save_replaces_and_removes_old_chunks(store: DynamoDBStateStore) -> None:
    store.save("s", Snapshot("s", Position(1), 1, os.urandom(700_000)))
    second = Snapshot("s", Position(1), 2, b"small", final=True)
    store.save("s", second)
    assert store.load("s") == stored(second)
    assert len([i for i in _items(store, "s") if i.startswith(CHUNK_PREFIX)]) == 1


def test_empty_snapshot_round_trip(store: DynamoDBStateStore) -> None:
    snap = Snapshot("s", Position(5, 0), 9, b"")
    store.save("s", snap)
    assert store.load("s") == stored(snap)


def test_crash_between_chunk_writes_still_loads_the_old_snapshot(
    store: DynamoDBStateStore,
) -> None:
    old = Snapshot("s", Position(10), 1, os.urandom(650_000))
    store.save("s", old)
    # A save that died after writing some chunks of a new version, before the head switch.
    store.write_chunks("s", "deadbeef" * 4, os.urandom(400_000))
    assert store.load("s") == stored(old)
    # The next save removes the orphans.
    new = Snapshot("s", Position(11), 2, b"new")
    store.save("s", new)
    assert store.load("s") == stored(new)
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
    assert loaded.base == b"two"


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


def test_deltas_append_to_the_base_and_a_base_compacts_them(store: DynamoDBStateStore) -> None:
    base = Snapshot("s", Position(BIG_SEQ), 1, os.urandom(400_000))
    d1 = Snapshot("s", Position(BIG_SEQ + 5), 2, b"delta-1", delta=True)
    d2 = Snapshot("s", Position(BIG_SEQ + 9, 2), 3, os.urandom(350_000), delta=True, final=True)
    store.save("s", base)
    chunks_after_base = len(_items(store, "s"))
    store.save("s", d1)
    store.save("s", d2)
    assert store.load("s") == stored(base, d1, d2)
    # A delta writes its own chunks and the head, nothing of the base.
    assert len(_items(store, "s")) == chunks_after_base + 1 + 2
    compacted = Snapshot("s", Position(BIG_SEQ + 10), 4, b"base-2")
    store.save("s", compacted)
    assert store.load("s") == stored(compacted)
    assert len([i for i in _items(store, "s") if i.startswith(CHUNK_PREFIX)]) == 1


def test_a_delta_without_a_base_is_refused(store: DynamoDBStateStore) -> None:
    with pytest.raises(StateStoreError, match="needs a stored base"):
        store.save("s", Snapshot("s", Position(1), 1, b"d", delta=True))
    assert store.load("s") is None


def test_an_older_position_never_replaces_a_newer_one(store: DynamoDBStateStore) -> None:
    # Sequence numbers compare as integers: 9 < 10 although "9" > "10" as strings.
    store.save("s", Snapshot("s", Position(10), 1, b"ten"))
    with pytest.raises(LeaseLostError):
        store.save("s", Snapshot("s", Position(9), 2, b"nine"))
    with pytest.raises(LeaseLostError):
        store.save("s", Snapshot("s", Position(9, 7), 2, b"nine", delta=True))
    store.save("s", Snapshot("s", Position(10), 3, b"ten again"))
    loaded = store.load("s")
    assert loaded is not None
    assert loaded.base == b"ten again"


def _lease_table(aws: Callable[[str], Any], unique_name: Callable[[str], str]) -> str:
    client = aws("dynamodb")
    name = unique_name("leases")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _take_lease(client: Any, table: str, shard_id: str, owner: str, counter: int) -> LeaseFence:
    """Write the KCL lease item as a lease taker does: new owner, counter moved on."""
    client.put_item(
        TableName=table,
        Item={
            "leaseKey": {"S": shard_id},
            "leaseOwner": {"S": owner},
            "leaseCounter": {"N": str(counter)},
            "checkpoint": {"S": "TRIM_HORIZON"},
        },
    )
    return LeaseFence(table, shard_id, owner, counter)


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_new_owners_snapshot(
    store: DynamoDBStateStore, aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    client = store._client
    leases = _lease_table(aws, unique_name)
    shard = "shardId-000000000001"
    a = _take_lease(client, leases, shard, "worker-a", 1)
    store.save(shard, Snapshot(shard, Position(3), 1, b"a@3"), fence=a)
    # A stalls; B takes the lease (the counter moves on) and saves at 5.
    b = _take_lease(client, leases, shard, "worker-b", 2)
    store_b = DynamoDBStateStore(client, store.table_name, _no_sleep_backoff())
    store_b.save(shard, Snapshot(shard, Position(5), 2, b"b@5"), fence=b)
    # A wakes and saves what it processed up to 4: refused, as a base or as a delta.
    with pytest.raises(LeaseLostError):
        store.save(shard, Snapshot(shard, Position(4), 3, b"a@4"), fence=a)
    with pytest.raises(LeaseLostError):
        store.save(shard, Snapshot(shard, Position(4), 3, b"a@4", delta=True), fence=a)
    loaded = store.load(shard)
    assert loaded is not None
    assert (loaded.base, loaded.deltas, loaded.position) == (b"b@5", (), Position(5))


def test_a_stale_lease_counter_is_refused_even_at_a_later_position(
    store: DynamoDBStateStore, aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    client = store._client
    leases = _lease_table(aws, unique_name)
    shard = "shardId-000000000002"
    a = _take_lease(client, leases, shard, "worker-a", 1)
    store.save(shard, Snapshot(shard, Position(3), 1, b"a@3"), fence=a)
    _take_lease(client, leases, shard, "worker-b", 2)
    with pytest.raises(LeaseLostError, match="not held"):
        store.save(shard, Snapshot(shard, Position(9), 2, b"a@9"), fence=a)
    loaded = store.load(shard)
    assert loaded is not None
    assert loaded.base == b"a@3"
    # The holder at its current counter saves.
    current = LeaseFence(leases, shard, "worker-b", 2)
    store.save(shard, Snapshot(shard, Position(9), 3, b"b@9", delta=True), fence=current)
    loaded = store.load(shard)
    assert loaded is not None
    assert loaded.deltas == (b"b@9",)


def test_the_owners_own_renewal_during_a_checkpoint_does_not_refuse_its_save(
    store: DynamoDBStateStore, aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    """Leases are renewed by their own thread: the counter may move on between the moment the
    fence is taken and the save. The counter is a lower bound; only the owner must match."""
    client = store._client
    leases = _lease_table(aws, unique_name)
    shard = "shardId-000000000003"
    fence = _take_lease(client, leases, shard, "worker-a", 1)
    _take_lease(client, leases, shard, "worker-a", 2)  # renewed by worker-a itself
    store.save(shard, Snapshot(shard, Position(4), 1, b"a@4"), fence=fence)
    loaded = store.load(shard)
    assert loaded is not None
    assert (loaded.base, loaded.position) == (b"a@4", Position(4))


def test_during_a_graceful_hand_over_the_worker_still_processing_saves_and_the_next_does_not(
    store: DynamoDBStateStore, aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    """KCL 3's graceful hand-over names the next worker in `leaseOwner` and the one still
    processing (until its final checkpoint) in `checkpointOwner`."""
    client = store._client
    leases = _lease_table(aws, unique_name)
    shard = "shardId-000000000004"
    a = _take_lease(client, leases, shard, "worker-a", 1)
    client.update_item(
        TableName=leases,
        Key={"leaseKey": {"S": shard}},
        UpdateExpression="SET leaseOwner = :next, checkpointOwner = :current",
        ExpressionAttributeValues={":next": {"S": "worker-b"}, ":current": {"S": "worker-a"}},
    )
    store.save(shard, Snapshot(shard, Position(3), 1, b"a@3", final=True), fence=a)
    with pytest.raises(LeaseLostError):
        store.save(
            shard,
            Snapshot(shard, Position(4), 2, b"b@4"),
            fence=LeaseFence(leases, shard, "worker-b", 1),
        )
    loaded = store.load(shard)
    assert loaded is not None
    assert (loaded.base, loaded.final) == (b"a@3", True)
