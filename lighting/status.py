"""What `luxflow status` shows per shard, read from the deployment's own tables and stream.

- owner and checkpoint: the lease table (both runners write it);
- lag: `MillisBehindLatest` of one `GetRecords(Limit=1)` right after the checkpoint, i.e. how
  far the oldest unprocessed record is from the tip (0: nothing unread). Two cheap calls per
  open shard; None for an ended shard;
- age of the last checkpoint: the lease table has no time, so this is the age of the shard's
  last state snapshot, which the checkpoint step saves just before writing the checkpoint
  (both runners); `snapshot_at_checkpoint` says whether that snapshot is the one at the
  checkpoint's position (a checkpoint without a state change saves no snapshot);
- dead letters in the last hour: dead letters whose record arrived in the last hour (the
  dead-letter table holds no other time), by a scan of the table's metadata items (of its
  first `max_scan_pages` pages when given: the operator page bounds what a refresh reads).
"""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.clock import HOUR_MS
from core.records import AT_TIMESTAMP, LATEST, Position
from lighting.clients import Clients
from lighting.settings import Settings
from streams.kinesis.leases import Lease, LeaseTable
from tables.dynamodb import HEAD


class ShardRow(msgspec.Struct, frozen=True):
    shard_id: str
    owner: str | None
    checkpoint: str
    lag_ms: int | None
    last_checkpoint_age_ms: int | None
    snapshot_at_checkpoint: bool
    dead_letters_last_hour: int
    parents: tuple[str, ...] = ()


def checkpoint_lag_ms(kinesis: Any, stream: str, lease: Lease) -> int | None:
    """MillisBehindLatest of the first record after the lease's checkpoint (None: ended shard
    or the shard is gone)."""
    if lease.finished:
        return None
    checkpoint = lease.checkpoint
    kwargs: dict[str, Any] = {"StreamName": stream, "ShardId": lease.shard_id}
    if isinstance(checkpoint, Position):
        kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        kwargs["StartingSequenceNumber"] = str(checkpoint.sequence_number)
    elif checkpoint == LATEST:
        kwargs["ShardIteratorType"] = LATEST
    elif checkpoint == AT_TIMESTAMP and lease.at_timestamp_ms is not None:
        kwargs["ShardIteratorType"] = AT_TIMESTAMP
        kwargs["Timestamp"] = lease.at_timestamp_ms / 1000
    else:
        kwargs["ShardIteratorType"] = "TRIM_HORIZON"
    try:
        iterator = kinesis.get_shard_iterator(**kwargs)["ShardIterator"]
        response = kinesis.get_records(ShardIterator=iterator, Limit=1)
    except (ClientError, BotoCoreError):
        return None
    lag = response.get("MillisBehindLatest")
    return int(lag) if lag is not None else None


def snapshot_head(dynamodb: Any, table: str, shard_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=table, Key={"shard_id": {"S": shard_id}, "item": {"S": HEAD}}
    ).get("Item")
    return item


def recent_dead_letters(
    dynamodb: Any, table: str, since_ms: int, *, max_pages: int | None = None
) -> dict[str, int]:
    """Dead letters per shard whose record arrived at or after `since_ms`, among the first
    `max_pages` scan pages (None: the whole table; a page reads at most 1 MB of it)."""
    counts: dict[str, int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "shard_id",
        "FilterExpression": "sk = :zero AND arrival_ms >= :since",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":since": {"N": str(since_ms)}},
    }
    pages = 0
    while max_pages is None or pages < max_pages:
        page = dynamodb.scan(**kwargs)
        pages += 1
        for item in page.get("Items", []):
            shard = item["shard_id"]["S"]
            counts[shard] = counts.get(shard, 0) + 1
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return counts


def shard_rows(
    settings: Settings, clients: Clients, now_ms: int, *, max_scan_pages: int | None = None
) -> list[ShardRow]:
    """One row per lease, in shard order; dead letters counted in at most `max_scan_pages`
    scan pages of their table (None: all of it)."""
    leases = LeaseTable(clients.dynamodb, settings.app_name).list()
    dead = recent_dead_letters(
        clients.dynamodb, settings.dead_letter_table, now_ms - HOUR_MS, max_pages=max_scan_pages
    )
    rows = []
    for shard_id in sorted(leases):
        lease = leases[shard_id]
        head = snapshot_head(clients.dynamodb, settings.state_table, shard_id)
        age_ms = None
        at_checkpoint = False
        if head is not None:
            age_ms = max(0, now_ms - int(head["saved_at_ms"]["N"]))
            if isinstance(lease.checkpoint, Position) and "sequence_number" in head:
                at_checkpoint = int(head["sequence_number"]["S"]) == (
                    lease.checkpoint.sequence_number
                )
            else:
                at_checkpoint = lease.finished and head.get("final", {}).get("BOOL", False)
        checkpoint = lease.checkpoint
        rows.append(
            ShardRow(
                shard_id=shard_id,
                owner=lease.owner,
                checkpoint=str(checkpoint.sequence_number)
                if isinstance(checkpoint, Position)
                else checkpoint,
                lag_ms=checkpoint_lag_ms(clients.kinesis, settings.stream, lease),
                last_checkpoint_age_ms=age_ms,
                snapshot_at_checkpoint=at_checkpoint,
                dead_letters_last_hour=dead.get(shard_id, 0),
                parents=lease.parent_ids,
            )
        )
    return rows
