"""Dead letters in DynamoDB, split into chunks so a 1 MiB record fits under the 400 KB item cap.

One dead letter is stored as items sharing one partition key, its identity:

    pk = "<shard_id>#<sequence_number:040d>#<sub_sequence_number>#<origin>#<detail_key>"
    sk = chunk number (0, 1, ...)

Each item carries up to `CHUNK_BYTES` of the original bytes in `data`. Chunk 0 also carries
the metadata: reason, origin, shard, sequence numbers, partition key, arrival_ms, total size
and chunk count. Writing the same dead letter again overwrites the same items.

Dead letters hold raw device payloads, so they expire: every item carries `expires_at`
(`TTL_ATTRIBUTE`, the attribute the table's time-to-live is configured on), in epoch seconds,
`retention_ms` after the record's arrival (default `DEFAULT_RETENTION_MS`, 14 days). It is
derived from the arrival time, not the clock, so writing a dead letter again writes the same
items.

Sequence numbers are stored as strings: Kinesis sequence numbers have more digits than a
DynamoDB number holds exactly.

The dead-letter output must never fail on its own items, whatever it is given: a detail key
over `MAX_DETAIL_KEY_CHARS` is replaced in the key by `sha256:<hex>` (and stored truncated),
reason and detail are stored truncated to `MAX_TEXT_CHARS`, so the partition key stays far
below DynamoDB's 2,048 bytes and chunk 0 below 400 KB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SinkError
from core.records import DeadLetter
from core.retry import Backoff, describe_error
from sinks.attrvalues import AttributeMap, from_item
from sinks.base import SinkCounters
from sinks.batching import BatchWriter, KeyedBuffer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL_ATTRIBUTE: Final = "expires_at"
"""The attribute DynamoDB's time-to-live reads on the dead-letter table (the CDK app's
`DEAD_LETTER_TTL_ATTRIBUTE`): epoch seconds."""
DEFAULT_RETENTION_MS: Final = 14 * 86_400_000
"""How long a dead letter is kept after its record arrived, unless the sink is told otherwise."""
CHUNK_BYTES: Final = 300_000
"""Bytes of the original record per item: with metadata, well under DynamoDB's 400 KB."""


MAX_DETAIL_KEY_CHARS: Final = 256
"""A longer detail key is hashed in the partition key."""
MAX_TEXT_CHARS: Final = 1_000
"""Reason, detail key, origin and partition key are stored truncated to this many characters."""


def _bounded(text: str) -> str:
    """`text`, or its digest when it is long or not UTF-8-encodable (a lone surrogate)."""
    if len(text) <= MAX_DETAIL_KEY_CHARS:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dead_letter_key(letter: DeadLetter) -> str:
    """The partition key: the dead letter's identity, bounded (see the module docstring)."""
    return (
        f"{_bounded(letter.shard_id)}#{letter.sequence_number:040d}#{letter.sub_sequence_number}"
        f"#{_bounded(letter.origin)}#{_bounded(letter.detail_key)}"
    )


def chunk_count(size: int) -> int:
    """Items needed for `size` bytes (an empty record still gets its metadata item)."""
    return max(1, -(-size // CHUNK_BYTES))


def _text(text: str) -> str:
    # Lone surrogates cannot be sent as UTF-8: replace them rather than fail the flush.
    return text[:MAX_TEXT_CHARS].encode("utf-8", "replace").decode("utf-8")


def expires_at_s(letter: DeadLetter, retention_ms: int) -> int:
    """When the dead letter's items expire (epoch seconds, rounded up)."""
    return -(-(letter.arrival_ms + retention_ms) // 1000)


def to_items(letter: DeadLetter, retention_ms: int = DEFAULT_RETENTION_MS) -> list[AttributeMap]:
    """The items of one dead letter, data chunks first and the metadata item (sk 0) last;
    each expires `retention_ms` after the record arrived."""
    pk = dead_letter_key(letter)
    data = letter.data
    count = chunk_count(len(data))
    expires = {"N": str(expires_at_s(letter, retention_ms))}
    items: list[AttributeMap] = []
    for number in range(count):
        chunk = data[number * CHUNK_BYTES : (number + 1) * CHUNK_BYTES]
        items.append(
            {
                "pk": {"S": pk},
                "sk": {"N": str(number)},
                "data": {"B": chunk},
                TTL_ATTRIBUTE: expires,
            }
        )
    head = items[0]
    head.update(
        {
            "shard_id": {"S": letter.shard_id},
            "sequence_number": {"S": str(letter.sequence_number)},
            "sub_sequence_number": {"N": str(letter.sub_sequence_number)},
            "partition_key": {"S": _text(letter.partition_key)},
            "origin": {"S": _text(letter.origin)},
            "reason": {"S": _text(letter.reason)},
            "detail_key": {"S": _text(letter.detail_key)},
            "arrival_ms": {"N": str(letter.arrival_ms)},
            "size": {"N": str(len(data))},
            "chunk_count": {"N": str(count)},
        }
    )
    # The metadata item goes last, so a reader that finds it knows earlier batches landed.
    return items[1:] + items[:1]


class DeadLetterSink:
    """Sink for `DeadLetter` items (other outputs are ignored), keyed idempotently, each
    expiring `retention_ms` after its record arrived.

    A failed flush means DynamoDB stayed unavailable past the retries: `SinkError`, the
    checkpoint is aborted and unwritten chunks stay buffered. `count` is how many dead
    letters this sink has stored (a re-sent one counts again; the table holds it once).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        backoff: Backoff,
        retention_ms: int = DEFAULT_RETENTION_MS,
    ) -> None:
        if retention_ms <= 0:
            raise ValueError("a dead letter's retention must be positive")
        self.table_name = table_name
        self.retention_ms = retention_ms
        self.counters = SinkCounters()
        self.count = 0
        self.by_origin: dict[str, int] = {}
        """Dead letters written to this sink, by origin (decode, agent, late, ...): metrics."""
        self._writer = BatchWriter(client, table_name, backoff, self.counters)
        self._buffer = KeyedBuffer()
        self._pending_heads: set[str] = set()

    @property
    def buffered(self) -> int:
        """Items (chunks) waiting for a flush."""
        return len(self._buffer)

    def write(self, item: object) -> None:
        if not isinstance(item, DeadLetter):
            return
        for attributes in to_items(item, self.retention_ms):
            self._buffer.put((attributes["pk"]["S"], attributes["sk"]["N"]), attributes)
        self._pending_heads.add(dead_letter_key(item))
        self.by_origin[item.origin] = self.by_origin.get(item.origin, 0) + 1

    def flush(self) -> None:
        self._buffer.write_all(self._writer)
        self.count += len(self._pending_heads)
        self._pending_heads.clear()

    def discard(self) -> None:
        self._buffer.clear()
        self._pending_heads.clear()


def _scan(client: DynamoDBClient, table_name: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table_name, "ConsistentRead": True}
    try:
        while True:
            page = client.scan(**kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last
    except (ClientError, BotoCoreError) as exc:
        raise SinkError(f"scan of {table_name} failed: {describe_error(exc)}") from exc


def read_dead_letters(client: DynamoDBClient, table_name: str) -> list[DeadLetter]:
    """Every complete dead letter in the table, reassembled byte for byte, in key order.

    A letter whose chunks are not all stored yet (a flush failed half-way; the retry will
    complete it) is left out.
    """
    chunks: dict[str, dict[int, bytes]] = {}
    heads: dict[str, dict[str, object]] = {}
    for raw in _scan(client, table_name):
        item = from_item(raw)
        pk = str(item["pk"])
        number = int(str(item["sk"]))
        chunks.setdefault(pk, {})[number] = bytes(raw["data"]["B"])
        if number == 0:
            heads[pk] = item
    letters: list[DeadLetter] = []
    for pk, head in heads.items():
        parts = chunks[pk]
        count = int(str(head["chunk_count"]))
        if any(n not in parts for n in range(count)):
            continue
        data = b"".join(parts[n] for n in range(count))
        if len(data) != int(str(head["size"])):
            continue
        letters.append(
            DeadLetter(
                shard_id=str(head["shard_id"]),
                sequence_number=int(str(head["sequence_number"])),
                sub_sequence_number=int(str(head["sub_sequence_number"])),
                partition_key=str(head["partition_key"]),
                origin=str(head["origin"]),
                reason=str(head["reason"]),
                data=data,
                arrival_ms=int(str(head["arrival_ms"])),
                detail_key=str(head["detail_key"]),
            )
        )
    letters.sort(key=dead_letter_key)
    return letters
