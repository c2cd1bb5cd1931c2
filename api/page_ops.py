"""What the operator page shows about the pipeline itself: per shard lag and checkpoint age
(`lighting.status`, as `luxflow status` shows them) and dead letters per hour by reason code.

Read once per page refresh. The dead-letter counts are scans of the dead-letter table's
metadata items that arrived in the last `DEAD_LETTER_HOURS` (and last hour, per shard),
projecting only what they count. A scan reads the whole table whatever it keeps, and the
table is largest exactly when something is wrong (bad input floods it, and it keeps 14 days):
so each scan reads at most `MAX_SCAN_PAGES` pages (1 MB each), and when the table is larger
the page says its counts are a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from core.clock import HOUR_MS
from domain.telemetry import reason_code
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.status import ShardRow, shard_rows

DEAD_LETTER_HOURS: Final = 6
MAX_SCAN_PAGES: Final = 4
"""Scan pages of the dead-letter table one refresh reads per count (at most 1 MB each)."""


@dataclass(frozen=True)
class DeadLetterCount:
    """Dead letters whose record arrived in the hour starting at `hour_ms`, with this code."""

    hour_ms: int
    reason: str
    count: int


@dataclass(frozen=True)
class Operations:
    shards: list[ShardRow]
    dead_letters: list[DeadLetterCount]
    dead_letters_complete: bool = True
    """False when the dead-letter table was larger than a refresh reads: counts are a lower
    bound (per shard too)."""


OperationsReader = Callable[[int], Operations]
"""Reads the pipeline's operations at `now_ms`."""


def dead_letters_by_hour(
    dynamodb: Any, table: str, now_ms: int, *, max_pages: int = MAX_SCAN_PAGES
) -> tuple[list[DeadLetterCount], bool]:
    """Dead letters per UTC hour and reason code over the last `DEAD_LETTER_HOURS` hours
    (the current hour included), newest hour first, then by reason, among the first
    `max_pages` scan pages; and whether those pages held the whole table."""
    since_ms = now_ms - now_ms % HOUR_MS - (DEAD_LETTER_HOURS - 1) * HOUR_MS
    counts: dict[tuple[int, str], int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "reason, arrival_ms",
        "FilterExpression": "sk = :zero AND arrival_ms >= :since",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":since": {"N": str(since_ms)}},
    }
    complete = False
    for _ in range(max_pages):
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            arrival_ms = int(item["arrival_ms"]["N"])
            key = (arrival_ms - arrival_ms % HOUR_MS, reason_code(item["reason"]["S"]))
            counts[key] = counts.get(key, 0) + 1
        if "LastEvaluatedKey" not in page:
            complete = True
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    letters = [
        DeadLetterCount(hour, reason, count)
        for (hour, reason), count in sorted(counts.items(), key=lambda kv: (-kv[0][0], kv[0][1]))
    ]
    return letters, complete


def operations_reader(settings: Settings, clients: Clients) -> OperationsReader:
    """The page's operations of this deployment, read with its command-side credentials."""

    def read(now_ms: int) -> Operations:
        letters, complete = dead_letters_by_hour(
            clients.dynamodb, settings.dead_letter_table, now_ms
        )
        shards = shard_rows(settings, clients, now_ms, max_scan_pages=MAX_SCAN_PAGES)
        return Operations(shards, letters, complete)

    return read
