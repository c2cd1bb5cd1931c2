"""The command model sink: agent outputs -> DynamoDB items, idempotent by key.

Two kinds of write, chosen per write by `newer_than_field`:

- plain (None): a put that replaces the item with the same key. Buffered with the last write
  of a key winning, sent with BatchWriteItem 25 at a time.
- conditional (a field name such as "ts_ms"): "current state" that must never move backwards.
  Buffered keeping the write with the highest field value per key, and sent on flush with a
  PutItem that applies only if no item is stored yet or the stored one is older, a few at a
  time (`sinks.conditional`: each put retried on its own, the flush returning once all have
  ended). A failed
  condition means the stored item is newer or equal: that counts as written. The failed put
  returns the stored item (`ReturnValuesOnConditionCheckFailure`, no extra write units), and a
  write the stored item strictly supersedes (or that a higher buffered write of its key
  replaced) is reported to `on_superseded`, with the stored item when there is one: the query
  model projects only what the command model holds (see `sinks.versions`). Equal is not
  superseded: re-processing after a crash between the two models' writes must still write the
  query point.

Items DynamoDB refuses as invalid (`ValidationException`: a key over 2,048 bytes, an item over
400 KB) and items that cannot be converted at all are handed to `reject(item, reason)` (the
dead-letter output) when one is given, and the flush goes on; see `sinks.batching`.

With `coalesce`, outputs that only ever replace one another (the current state of an asset,
yielded on every reading) are coalesced before `select` runs: the sink keeps the newest raw
output per key and builds items for those alone at flush, not one per reading.

Order within a flush: the conditional writes of outputs that are each written (alarms: faults,
spikes; reports) first, then plain items, then the coalesced ones (current states), so an
alarm is stored before a fleet's worth of current states, not after it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SinkError
from core.retry import Backoff, describe_error
from sinks.attrvalues import AttributeMap, from_item, to_item
from sinks.base import SinkCounters
from sinks.batching import (
    DYNAMODB_VALIDATION,
    MAX_BATCH_ITEMS,
    BatchWriter,
    KeyedBuffer,
    is_validation_error,
    rejection_reason,
)
from sinks.conditional import (
    PUT_CONCURRENCY,
    ConditionalPut,
    ConditionalPuts,
    PutOutcome,
)
from sinks.rejects import Reject, bounded_reason

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ItemWrite(Protocol):
    """One item to store. Any object with these two attributes fits (e.g. a msgspec Struct).

    `item` holds plain Python values (str, int, float, bool, None, bytes, list, dict) and
    includes the key fields. `newer_than_field` names a numeric attribute (event time in ms)
    that makes the write conditional, or is None for a plain put.
    """

    @property
    def item(self) -> Mapping[str, object]: ...

    @property
    def newer_than_field(self) -> str | None: ...


Select = Callable[[object], Iterable[ItemWrite]]
"""Turns one agent output into the item writes it implies (none for outputs not stored here)."""

OnSuperseded = Callable[[Mapping[str, object], str, Mapping[str, object] | None], None]
"""Told (the item's plain values, its newer-than field, the stored item's plain values or None
when a buffered write superseded it) of a conditional write not applied because a higher
version of the item is stored or buffered."""

Coalesce = Callable[[object], tuple[Hashable, int] | None]
"""(key, version) of an output that supersedes every older output with the same key, or None
for outputs that must each be written. Version is the event time in ms: the newest wins."""


class DynamoDBSink:
    """Sink writing the items `select` derives from each agent output to one table.

    A failed flush means DynamoDB stayed unavailable past the retries: `SinkError`, the
    checkpoint is aborted and unstored items stay buffered (invalid items never fail it: they
    go to `reject`). Every write is idempotent by key, so re-sending is safe.

    `coalesce` (optional) names the outputs that may be coalesced: of those with one key only
    the one with the highest version (the first of equal ones) is kept, as the raw output, and
    `select` runs on it at flush. Its writes must be conditional on that version (or their
    item keys written by no other output), so dropping the older outputs stores what writing
    each of them would have stored. An output whose items cannot be stored makes `flush`
    raise `SinkError` and stays buffered.

    `put_concurrency`: conditional puts in flight at once during a flush (1: one after
    another), on a pool of threads sharing `client`.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        select: Select,
        backoff: Backoff,
        key_fields: Sequence[str] = ("pk", "sk"),
        *,
        coalesce: Coalesce | None = None,
        reject: Reject[Mapping[str, object]] | None = None,
        on_superseded: OnSuperseded | None = None,
        put_concurrency: int = PUT_CONCURRENCY,
    ) -> None:
        if not key_fields:
            raise ValueError("key_fields must name at least the partition key")
        self.table_name = table_name
        self.counters = SinkCounters()
        self._client = client
        self._select = select
        self._backoff = backoff
        self._key_fields = tuple(key_fields)
        self._reject = reject
        self._on_superseded = on_superseded
        self._writer = BatchWriter(client, table_name, backoff, self.counters, reject)
        self._plain = KeyedBuffer()
        self._puts = ConditionalPuts(
            client, table_name, self._key_fields[0], backoff, put_concurrency
        )
        # Conditional writes of outputs written each (alarms, reports), then of coalesced
        # outputs (current states): flushed in that order.
        self._conditional: dict[Hashable, ConditionalPut] = {}
        self._coalesced: dict[Hashable, ConditionalPut] = {}
        self._coalesce = coalesce
        # Coalesced outputs, not yet turned into items: key -> (version, output).
        self._latest: dict[Hashable, tuple[int, object]] = {}
        # After an early batch fails, writing waits for flush(), which reports the error.
        self._early_writes_paused = False

    @property
    def buffered(self) -> int:
        """Items waiting for a flush."""
        return len(self._plain) + len(self._conditional) + len(self._coalesced) + len(self._latest)

    def write(self, item: object) -> None:
        """Buffer the writes `select` derives from `item`; send a batch early once 25 plain
        items wait. An item that cannot be stored (no key, a value DynamoDB cannot hold) goes to
        `reject`; without one, `SinkError` is raised and writes derived before it stay buffered.
        A coalesced output is only held (see the class docstring)."""
        if self._coalesce is not None:
            found = self._coalesce(item)
            if found is not None:
                key, version = found
                held = self._latest.get(key)
                # Equal versions keep the first output, as the conditional write (<) does.
                if held is None or held[0] < version:
                    self._latest[key] = (version, item)
                return
        for write in self._select(item):
            self._buffer(write, self._conditional)
        if len(self._plain) >= MAX_BATCH_ITEMS and not self._early_writes_paused:
            try:
                self._plain.write_batch(self._writer)
            except SinkError:
                self._early_writes_paused = True

    def flush(self) -> None:
        """Store everything buffered: coalesced outputs become items; then the conditional
        writes of the other outputs (alarms first), the plain items, and the conditional
        writes of coalesced outputs (current states) are stored, in that order, each group
        once the one before it is. An output leaves the buffer once its items are built; an
        item leaves it once stored. A group whose puts fail in part raises `SinkError` once
        all of its puts have ended, the failed ones still buffered and the later groups
        not sent."""
        latest = self._latest
        for key in list(latest):
            for write in self._select(latest[key][1]):
                self._buffer(write, self._coalesced)
            del latest[key]
        self._put_all(self._conditional)
        self._plain.write_all(self._writer)
        self._put_all(self._coalesced)
        self._early_writes_paused = False

    def discard(self) -> None:
        self._plain.clear()
        self._conditional.clear()
        self._coalesced.clear()
        self._latest.clear()
        self._early_writes_paused = False

    def _buffer(self, write: ItemWrite, conditional: dict[Hashable, ConditionalPut]) -> None:
        values = write.item
        try:
            key = tuple(values[name] for name in self._key_fields)
        except KeyError as exc:
            self._invalid(values, f"item for {self.table_name} lacks key field {exc}")
            return
        try:
            attributes = to_item(values)
        except (TypeError, ValueError) as exc:
            self._invalid(values, f"item {key!r} for {self.table_name}: {exc}")
            return
        field = write.newer_than_field
        if field is None:
            self._plain.put(key, attributes)
            return
        if field not in values:
            self._invalid(values, f"item {key!r} for {self.table_name} lacks its {field!r} field")
            return
        incoming = ConditionalPut(field, values[field], attributes, values)
        held = conditional.get(key)
        # Equal values keep the first write, as the stored-side condition (<) does.
        if held is None or held.value < incoming.value:
            conditional[key] = incoming
            if held is not None:
                self._superseded(held)
        elif incoming.value < held.value:
            self._superseded(incoming)

    def _superseded(self, write: ConditionalPut, stored: AttributeMap | None = None) -> None:
        if self._on_superseded is not None:
            self._on_superseded(
                write.values, write.field, from_item(stored) if stored is not None else None
            )

    def _invalid(self, values: Mapping[str, object], problem: str) -> None:
        """An item that cannot even be sent: rejected if we may, else `SinkError`."""
        if self._reject is None:
            raise SinkError(problem)
        self.counters.rejected += 1
        self._reject(values, bounded_reason(DYNAMODB_VALIDATION, problem))

    def _put_all(self, buffer: dict[Hashable, ConditionalPut]) -> None:
        """Put every write of `buffer` if newer (`sinks.conditional`), then, on this thread,
        count each outcome and drop what was stored (or stale, or rejected) from `buffer`;
        `SinkError` for the first put that failed, the failed ones left in `buffer`."""
        if not buffer:
            return
        keys = list(buffer)
        outcomes = self._puts.put_all([buffer[key] for key in keys])
        failure: BaseException | None = None
        for key, outcome in zip(keys, outcomes, strict=True):
            if self._settled(outcome):
                del buffer[key]
            elif failure is None:
                failure = outcome.error
        if failure is None:
            return
        if isinstance(failure, ClientError | BotoCoreError):
            raise SinkError(
                f"conditional PutItem to {self.table_name} failed: {describe_error(failure)}"
            ) from failure
        raise failure

    def _settled(self, outcome: PutOutcome) -> bool:
        """Count `outcome`; True when its write needs no more sending (stored, a newer one is
        stored, or rejected as invalid)."""
        counters = self.counters
        counters.calls += outcome.calls
        counters.retries += outcome.retries
        counters.throttles += outcome.throttles
        counters.request_us += outcome.request_us
        write = outcome.write
        if outcome.applied:
            counters.items_written += 1
            return True
        if outcome.stale:
            counters.stale_skipped += 1
            stored = outcome.stored or {}
            if _stored_is_newer(stored.get(write.field), write.value):
                self._superseded(write, stored)
            return True
        error = outcome.error
        if (
            self._reject is not None
            and isinstance(error, ClientError | BotoCoreError)
            and is_validation_error(error)
        ):
            counters.rejected += 1
            self._reject(from_item(write.item), rejection_reason(error))
            return True
        return False


def _stored_is_newer(stored: object, incoming: object) -> bool:
    """Whether a stored version attribute (`{"N": "..."}`) is above `incoming`. A stored item
    without it (or not returned) is not known to be newer: the query point is then written."""
    if not isinstance(stored, dict) or "N" not in stored:
        return False
    if not isinstance(incoming, int | float):
        return False
    try:
        return Decimal(str(stored["N"])) > Decimal(str(incoming))
    except ArithmeticError:
        return False
