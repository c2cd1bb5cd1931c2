"""What the operator page shows about the pipeline itself: per shard lag and checkpoint age
(`lighting.status`, as `luxflow status` shows them) and dead letters per hour by reason code.

Read once per page refresh. The dead-letter count is a scan of the dead-letter table's
metadata items that arrived in the last `DEAD_LETTER_HOURS`, projecting only the reason and
the arrival time: cheap while the table is small, which a healthy deployment's is.
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


OperationsReader = Callable[[int], Operations]
"""Reads the pipeline's operations at `now_ms`."""


def dead_letters_by_hour(dynamodb: Any, table: str, now_ms: int) -> list[DeadLetterCount]:
    """Dead letters per UTC hour and reason code over the last `DEAD_LETTER_HOURS` hours
    (the current hour included), newest hour first, then by reason."""
    since_ms = now_ms - now_ms % HOUR_MS - (DEAD_LETTER_HOURS - 1) * HOUR_MS
    counts: dict[tuple[int, str], int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "reason, arrival_ms",
        "FilterExpression": "sk = :zero AND arrival_ms >= :since",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":since": {"N": str(since_ms)}},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            arrival_ms = int(item["arrival_ms"]["N"])
            key = (arrival_ms - arrival_ms % HOUR_MS, reason_code(item["reason"]["S"]))
            counts[key] = counts.get(key, 0) + 1
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [
        DeadLetterCount(hour, reason, count)
        for (hour, reason), count in sorted(counts.items(), key=lambda kv: (-kv[0][0], kv[0][1]))
    ]


def operations_reader(settings: Settings, clients: Clients) -> OperationsReader:
    """The page's operations of this deployment, read with its command-side credentials."""

    def read(now_ms: int) -> Operations:
        return Operations(
            shard_rows(settings, clients, now_ms),
            dead_letters_by_hour(clients.dynamodb, settings.dead_letter_table, now_ms),
        )

    return read
