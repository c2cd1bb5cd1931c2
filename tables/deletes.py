"""Deleting items of the state table (string keys `shard_id`/`item`) in batches, shared by the
state store and the savepoints that live in the same table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import StateStoreError
from core.retry import Backoff


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
