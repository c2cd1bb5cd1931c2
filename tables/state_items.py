"""Reading and deleting items of the state table (string keys `shard_id`/`item`), shared by
the state store and the savepoints that live in the same table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from core.errors import StateStoreError
from core.retry import Backoff


def pages(call: Callable[..., Any], operation: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query or Scan `operation` answers, page after page, each page through
    `call` (which retries a failed call)."""
    while True:
        response = call(operation, **kwargs)
        yield from response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def query_items(
    call: Callable[..., Any],
    client: Any,
    table: str,
    partition: str,
    prefix: str,
    *,
    with_data: bool,
) -> Iterator[dict[str, Any]]:
    """Items of `partition` whose `item` starts with `prefix`, in key order, read consistently;
    only their keys unless `with_data`."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "KeyConditionExpression": "shard_id = :p",
        "ExpressionAttributeValues": {":p": {"S": partition}},
    }
    if prefix:  # DynamoDB refuses an empty begins_with operand
        kwargs["KeyConditionExpression"] += " AND begins_with(#item, :prefix)"
        kwargs["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        kwargs["ExpressionAttributeNames"] = {"#item": "item"}
    if not with_data:
        kwargs["ProjectionExpression"] = "shard_id, #item"
        kwargs["ExpressionAttributeNames"] = {"#item": "item"}
    return pages(call, client.query, **kwargs)


def delete_items(
    call: Callable[..., Any],
    client: Any,
    table: str,
    backoff: Backoff,
    *,
    partition: str,
    items: list[str],
) -> None:
    """Delete `items` of `partition`, 25 per BatchWriteItem (each through `call`, which retries
    a failed call), re-sending exactly the unprocessed ones with capped exponential pauses;
    `StateStoreError` when some stay unprocessed past `backoff.max_attempts`."""
    for offset in range(0, len(items), 25):
        pending: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": {"shard_id": {"S": partition}, "item": {"S": item}}}}
            for item in items[offset : offset + 25]
        ]
        retry = 0
        while pending:
            response = call(client.batch_write_item, RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if pending:
                if retry + 1 >= backoff.max_attempts:
                    raise StateStoreError(
                        f"{partition}: {len(pending)} deletes left unprocessed in {table}"
                    )
                backoff.pause(retry)
                retry += 1
