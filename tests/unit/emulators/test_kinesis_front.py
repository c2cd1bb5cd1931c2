"""The Kinesis front's additions to kinesalite, against a fake kinesalite (no network):
`ChildShards` at the end of a closed shard, and UpdateShardCount as a doubling."""

from __future__ import annotations

import json
from typing import Any

from emulators.kinesis_front import Answer, KinesisFront, Upstream

TOP = 2**128 - 1
HALF = 2**127


def shard(index: int, low: int, high: int, *parents: str, closed: bool = False) -> dict[str, Any]:
    described: dict[str, Any] = {
        "ShardId": f"shardId-{index:012d}",
        "HashKeyRange": {"StartingHashKey": str(low), "EndingHashKey": str(high)},
        "SequenceNumberRange": {"StartingSequenceNumber": "1"},
    }
    if closed:
        described["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
    if parents:
        described["ParentShardId"] = parents[0]
    if len(parents) > 1:
        described["AdjacentParentShardId"] = parents[1]
    return described


class FakeKinesalite(Upstream):
    """Answers ListShards from `shards`, GetShardIterator and GetRecords as kinesalite does
    (an iterator; no `NextShardIterator` once a closed shard is read), records SplitShard."""

    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards
        self.splits: list[tuple[str, str]] = []
        self.settled = 0

    def call(self, headers: dict[str, str], body: bytes) -> Answer:
        action = headers["x-amz-target"].split(".")[1]
        request = json.loads(body)
        if action == "GetShardIterator":
            answer: dict[str, Any] = {"ShardIterator": f"it-{request['ShardId']}-0"}
        elif action == "GetRecords":
            name, _, step = request["ShardIterator"].rpartition("-")
            answer = {"Records": [], "MillisBehindLatest": 0}
            if step == "0":
                answer["NextShardIterator"] = f"{name}-1"
        else:
            raise AssertionError(action)
        return 200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode()

    def target(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "ListShards":
            return {"Shards": self.shards}
        if action == "DescribeStreamSummary":
            # kinesalite is UPDATING for a moment after each split.
            status = "UPDATING" if len(self.splits) > self.settled else "ACTIVE"
            self.settled = len(self.splits)
            return {"StreamDescriptionSummary": {"StreamStatus": status}}
        if action == "SplitShard":
            assert self.settled == len(self.splits), "split while the stream was UPDATING"
            self.splits.append((payload["ShardToSplit"], payload["NewStartingHashKey"]))
            return {}
        raise AssertionError(action)


def call(front: KinesisFront, action: str, **request: Any) -> tuple[int, dict[str, Any]]:
    headers = {"x-amz-target": f"Kinesis_20131202.{action}"}
    status, _, body = front.handle(headers, json.dumps(request).encode())
    return status, json.loads(body)


def read_to_the_end(front: KinesisFront, shard_id: str) -> dict[str, Any]:
    _, first = call(front, "GetShardIterator", StreamName="s", ShardId=shard_id)
    _, page = call(front, "GetRecords", ShardIterator=first["ShardIterator"])
    assert "ChildShards" not in page
    _, last = call(front, "GetRecords", ShardIterator=page["NextShardIterator"])
    assert "NextShardIterator" not in last
    return last


def test_the_end_of_a_split_parent_names_both_children_with_their_ranges() -> None:
    fake = FakeKinesalite(
        [
            shard(0, 0, TOP, closed=True),
            shard(1, 0, HALF - 1, "shardId-000000000000"),
            shard(2, HALF, TOP, "shardId-000000000000"),
        ]
    )
    last = read_to_the_end(KinesisFront(fake), "shardId-000000000000")
    assert last["ChildShards"] == [
        {
            "ShardId": "shardId-000000000001",
            "ParentShards": ["shardId-000000000000"],
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)},
        },
        {
            "ShardId": "shardId-000000000002",
            "ParentShards": ["shardId-000000000000"],
            "HashKeyRange": {"StartingHashKey": str(HALF), "EndingHashKey": str(TOP)},
        },
    ]


def test_the_end_of_either_merged_parent_names_the_child_and_both_parents() -> None:
    fake = FakeKinesalite(
        [
            shard(0, 0, HALF - 1, closed=True),
            shard(1, HALF, TOP, closed=True),
            shard(2, 0, TOP, "shardId-000000000000", "shardId-000000000001"),
        ]
    )
    front = KinesisFront(fake)
    for parent in ("shardId-000000000000", "shardId-000000000001"):
        children = read_to_the_end(front, parent)["ChildShards"]
        assert [(c["ShardId"], c["ParentShards"]) for c in children] == [
            ("shardId-000000000002", ["shardId-000000000000", "shardId-000000000001"])
        ]


def test_doubling_the_shard_count_splits_every_open_shard_at_its_middle() -> None:
    fake = FakeKinesalite(
        [
            shard(0, 0, TOP, closed=True),
            shard(1, 0, HALF - 1, "shardId-000000000000"),
            shard(2, HALF, TOP, "shardId-000000000000"),
        ]
    )
    status, answer = call(
        KinesisFront(fake), "UpdateShardCount", StreamName="s", TargetShardCount=4
    )
    assert (status, answer["CurrentShardCount"], answer["TargetShardCount"]) == (200, 2, 4)
    assert fake.splits == [
        ("shardId-000000000001", str(HALF // 2)),
        ("shardId-000000000002", str(HALF + HALF // 2)),
    ]


def test_any_other_target_shard_count_is_refused_and_splits_nothing() -> None:
    fake = FakeKinesalite([shard(0, 0, HALF - 1), shard(1, HALF, TOP)])
    front = KinesisFront(fake)
    for target in (1, 2, 3, 5, 8):
        status, answer = call(front, "UpdateShardCount", StreamName="s", TargetShardCount=target)
        assert (status, answer["__type"]) == (400, "InvalidArgumentException")
    assert fake.splits == []
