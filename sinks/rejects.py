"""What a sink does with what a store refuses, or what it cannot send at all: it hands it,
once, to a `Reject` callback with a reason, drops it from its buffer, and never retries it.

The worker's callback turns each one into a dead letter of its shard: `dead_letter_reject`
makes it, for command-model items and query-model points alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import msgspec

from core.records import DeadLetter
from sinks.base import Sink

T = TypeVar("T")

Reject = Callable[[T, str], None]
"""`reject(refused, reason)`: receives an item or point a sink will never store, and why
(`<code>: <detail>`, e.g. `dynamodb_validation: ...`). Called once per refused thing, which
has already left the sink's buffer: a flush goes on without it."""

MAX_REASON_CHARS: Final = 1_000
"""A reason is cut to this many characters: it often quotes the store's error message."""


def bounded_reason(code: str, detail: str) -> str:
    """The reason handed to `Reject`: `<code>: <detail>`, bounded."""
    return f"{code}: {detail}"[:MAX_REASON_CHARS]


def as_json(refused: object) -> bytes:
    """What a dead letter keeps of a refused item or point: its JSON, else its repr."""
    try:
        return msgspec.json.encode(refused)
    except (TypeError, ValueError, OverflowError):
        return repr(refused).encode("utf-8", "replace")


def dead_letter_reject(
    dead_letter: Sink,
    *,
    shard_id: str,
    origin: str,
    detail_key: Callable[[T], str],
    now_ms: Callable[[], int],
) -> Reject[T]:
    """A `Reject` writing each refused thing to `dead_letter` as a `DeadLetter` of `shard_id`
    with this `origin` (the store: `dynamodb`, `timestream`, `influxdb`), its bytes
    `as_json`, named by `detail_key(refused)` and stamped `now_ms()`. It comes from no one
    record, so it has no sequence number or partition key."""

    def reject(refused: T, reason: str) -> None:
        dead_letter.write(
            DeadLetter(
                shard_id,
                0,
                0,
                "",
                origin,
                reason,
                as_json(refused),
                now_ms(),
                detail_key=detail_key(refused),
            )
        )

    return reject
