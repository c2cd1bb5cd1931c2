"""The query model sink: agent outputs -> Timestream multi-measure records.

Memory-store retention is our rule, not the emulator's: a point older than
`now_ms() - memory_retention_ms` can only go to the magnetic store. With
`magnetic_store_writes=True` it is written (the table must have magnetic store writes
enabled, see `sinks.provision.ensure_timestream`); otherwise it goes to
`reject(point, "older_than_memory_retention")`. Points are never dropped silently:
everything the service rejects goes to `reject` with the service's reason, exactly once, and
is never retried: `RejectedRecords` name the records refused (the others were stored); a
`ValidationException` for the whole call splits the chunk in halves until each invalid record
is alone (`timestream_validation: <message>`). A point that breaks a limit we know (dimension
value over 2 KB, non-finite measure) is rejected before sending (`invalid_point: ...`).

Versions only move forward (`sinks.versions`): a point's `Version` is its `version` attribute
(1 without one), so Timestream upserts a higher version over a lower one. A record refused
because the stored one has an `ExistingVersion` above ours (or equal, for a versioned point)
is a no-op, counted in
`stale_skipped`, never a dead letter; so are points `forward_only` drops at flush (superseded
in the command model, or by a higher version of the same point in the buffer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from core.errors import SinkError
from core.retry import Backoff, describe_error, error_code, retry_call
from sinks.base import SinkCounters
from sinks.rejects import Reject, bounded_reason
from sinks.versions import Superseded, VersionedPoint, forward_only

if TYPE_CHECKING:
    from mypy_boto3_timestream_write import TimestreamWriteClient

MAX_RECORDS_PER_CALL: Final = 100
"""WriteRecords accepts at most 100 records per call."""

MAX_DIMENSION_VALUE_BYTES: Final = 2_048
"""Timestream's limit on one dimension value (ids follow the id grammar: 128 at most)."""
MAX_NAME_BYTES: Final = 256
"""Timestream's limit on dimension and measure names."""

OLDER_THAN_MEMORY_RETENTION: Final = "older_than_memory_retention"
INVALID_POINT: Final = "invalid_point"
TIMESTREAM_VALIDATION: Final = "timestream_validation"


class TimePoint(Protocol):
    """One multi-measure record to store. Any object with these attributes fits.

    An optional `version: int` attribute (default 1) lets a later, corrected point replace
    an earlier one with the same table, dimensions, measure name and time.
    """

    @property
    def table(self) -> str: ...

    @property
    def dimensions(self) -> Mapping[str, str]: ...

    @property
    def measure_name(self) -> str: ...

    @property
    def measures(self) -> Mapping[str, float | int | str | bool]: ...

    @property
    def time_ms(self) -> int: ...


SelectPoints = Callable[[object], Iterable[TimePoint]]
"""Turns one agent output into the points it implies (none for outputs not stored here)."""

Record = dict[str, Any]


def measure_value(name: str, value: object) -> dict[str, str]:
    """One typed MeasureValue. bool is BOOLEAN (checked before int, its superclass)."""
    if type(value) is float:
        return {"Name": name, "Value": _float_text(name, value), "Type": "DOUBLE"}
    if isinstance(value, bool):
        return {"Name": name, "Value": "true" if value else "false", "Type": "BOOLEAN"}
    if isinstance(value, int):
        return {"Name": name, "Value": str(value), "Type": "BIGINT"}
    if isinstance(value, float):  # a subclass: its own repr, never memoised
        if not _isfinite(value):
            raise ValueError(f"measure {name!r} is {value!r}")
        return {"Name": name, "Value": repr(value), "Type": "DOUBLE"}
    if isinstance(value, str):
        return {"Name": name, "Value": value, "Type": "VARCHAR"}
    raise TypeError(f"measure {name!r} has unsupported type {type(value).__name__}")


_FLOAT_TEXT_MAX: Final = 4_096
"""Entries of the float -> text memo before it starts again (about 0.5 MB at most)."""
_float_texts: dict[float, str] = {}
"""`repr` of finite non-zero floats already written. Measures repeat a lot (sensor resolution,
the same minimum, maximum and last of a quiet interval): a lookup is a fraction of a `repr`.
Zero is never put in: 0.0 and -0.0 are equal keys with different texts."""
_cached_float_text = _float_texts.get
_isfinite = math.isfinite
_copysign = math.copysign


def _float_text(name: str, value: float) -> str:
    """`repr(value)` of an exact float, remembered; `ValueError` for a non-finite value."""
    if not value:  # a fifth of the measures: no repr, no memo (see `_float_texts`)
        return "-0.0" if _copysign(1.0, value) < 0 else "0.0"
    if not _isfinite(value):
        raise ValueError(f"measure {name!r} is {value!r}")
    text = repr(value)
    if len(_float_texts) >= _FLOAT_TEXT_MAX:
        _float_texts.clear()
    _float_texts[value] = text
    return text


def measure_values(measures: Mapping[str, object]) -> list[dict[str, str]]:
    """`measure_value` of every measure, in order. Floats (most measures) are one exact-type
    test and a memo lookup: this runs for every measure of every point."""
    return [
        {
            "Name": name,
            "Value": _cached_float_text(value) or _float_text(name, value),
            "Type": "DOUBLE",
        }
        if type(value) is float
        else measure_value(name, value)
        for name, value in measures.items()
    ]


# A str of at most this many characters is within the byte limits whatever it holds (UTF-8
# takes at most 4 bytes a character): the common case skips encoding it.
_SAFE_VALUE_CHARS: Final = MAX_DIMENSION_VALUE_BYTES // 4
_SAFE_NAME_CHARS: Final = MAX_NAME_BYTES // 4


def _check_dimension(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"dimension {name[:64]!r} must be a non-empty string")
    if len(value.encode()) > MAX_DIMENSION_VALUE_BYTES:
        raise ValueError(f"dimension {name[:64]!r} is over {MAX_DIMENSION_VALUE_BYTES} bytes")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"dimension name {name[:64]!r}... is over {MAX_NAME_BYTES} bytes")


def to_record(point: TimePoint) -> Record:
    """The full WriteRecords record of one point (nothing hoisted)."""
    measures = point.measures
    if not measures:
        raise ValueError("a point needs at least one measure")
    dimensions = point.dimensions
    for name, value in dimensions.items():
        if not (
            type(value) is str
            and 0 < len(value) <= _SAFE_VALUE_CHARS
            and len(name) <= _SAFE_NAME_CHARS
        ):
            _check_dimension(name, value)
    measure_name = point.measure_name
    if len(measure_name) > _SAFE_NAME_CHARS and len(measure_name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"measure name {measure_name[:64]!r}... is too long")
    return {
        "Dimensions": [
            {"Name": name, "Value": value, "DimensionValueType": "VARCHAR"}
            for name, value in dimensions.items()
        ],
        "MeasureName": measure_name,
        "MeasureValueType": "MULTI",
        "MeasureValues": measure_values(measures),
        "Time": str(int(point.time_ms)),
        "TimeUnit": "MILLISECONDS",
        "Version": int(getattr(point, "version", 1)),
    }


_HOISTABLE: Final = ("Dimensions", "MeasureName", "MeasureValueType", "TimeUnit", "Version")


def hoist_common(records: Sequence[Record]) -> tuple[Record, list[Record]]:
    """Move attributes every record shares into CommonAttributes (smaller requests).

    Returns (common attributes, records without them).
    """
    common: Record = {}
    for name in _HOISTABLE:
        first = records[0].get(name)
        if first is not None and all(r.get(name) == first for r in records):
            common[name] = first
    stripped = [{k: v for k, v in r.items() if k not in common} for r in records]
    return common, stripped


def is_older_than_memory_retention(time_ms: int, now_ms: int, memory_retention_ms: int) -> bool:
    """True when the memory store no longer accepts a point of this time."""
    return time_ms < now_ms - memory_retention_ms


def is_superseded(rejection: Mapping[str, Any], record: Record, *, versioned: bool) -> bool:
    """Whether a RejectedRecords entry says the stored record supersedes this one: its
    `ExistingVersion` is above ours, or equal for a `versioned` point (equal versions of an
    event are equal reports; the first one stays). An unversioned point refused for a different
    value is not superseded: its identity should never carry two values, so it is dead-lettered."""
    existing = rejection.get("ExistingVersion")
    if not isinstance(existing, int):
        return False
    ours = int(record.get("Version", 1))
    return existing > ours or (versioned and existing == ours)


class TimestreamSink:
    """Sink writing the points `select` derives from each agent output to one database.

    A failed flush means Timestream stayed unavailable past the retries: `SinkError`, the
    checkpoint is aborted and points not yet stored or rejected stay buffered. A rejected point
    is handed to `reject` exactly once and leaves the buffer, so the checkpoint can proceed.
    """

    def __init__(
        self,
        client: TimestreamWriteClient,
        database: str,
        select: SelectPoints,
        backoff: Backoff,
        *,
        memory_retention_ms: int,
        magnetic_store_writes: bool,
        now_ms: Callable[[], int],
        reject: Reject[TimePoint],
        common_attributes: bool = True,
        superseded: Superseded | None = None,
    ) -> None:
        if memory_retention_ms <= 0:
            raise ValueError("memory_retention_ms must be positive")
        self.database = database
        self.counters = SinkCounters()
        self._client = client
        self._select = select
        self._backoff = backoff
        self._memory_retention_ms = memory_retention_ms
        self._magnetic_store_writes = magnetic_store_writes
        self._now_ms = now_ms
        self._reject = reject
        # Off for emulators that drop CommonAttributes (moto): every record then stands alone.
        self._common_attributes = common_attributes
        self._superseded = superseded
        # Per table, in arrival order: (point, record).
        self._buffer: dict[str, list[tuple[TimePoint, Record]]] = {}

    @property
    def buffered(self) -> int:
        """Points waiting for a flush."""
        return sum(len(entries) for entries in self._buffer.values())

    def write(self, item: object) -> None:
        for point in self._select(item):
            try:
                record = to_record(point)
            except (TypeError, ValueError) as exc:
                self._rejected(point, f"{INVALID_POINT}: {exc}")
                continue
            self._buffer.setdefault(point.table, []).append((point, record))

    def flush(self) -> None:
        """Drop the superseded points, apply the retention rule, then write every table's
        points 100 per call."""
        self._drop_superseded()
        self._apply_retention()
        for table, entries in self._buffer.items():
            while entries:
                chunk = entries[:MAX_RECORDS_PER_CALL]
                self._write_chunk(table, chunk)
                del entries[: len(chunk)]
        self._buffer.clear()
        if self._superseded is not None:
            self._superseded.clear()

    def _drop_superseded(self) -> None:
        for table, entries in self._buffer.items():
            stale = forward_only([point for point, _ in entries], self._superseded)
            if stale:
                self.counters.stale_skipped += len(stale)
                self._buffer[table] = [e for i, e in enumerate(entries) if i not in stale]

    def discard(self) -> None:
        self._buffer.clear()
        if self._superseded is not None:
            self._superseded.clear()

    def _apply_retention(self) -> None:
        if self._magnetic_store_writes:
            return
        now_ms = self._now_ms()
        for table, entries in self._buffer.items():
            kept = []
            for point, record in entries:
                if is_older_than_memory_retention(point.time_ms, now_ms, self._memory_retention_ms):
                    self._rejected(point, OLDER_THAN_MEMORY_RETENTION)
                else:
                    kept.append((point, record))
            self._buffer[table] = kept

    def _write_chunk(self, table: str, chunk: list[tuple[TimePoint, Record]]) -> None:
        if self._common_attributes:
            common, records = hoist_common([record for _, record in chunk])
        else:
            common, records = {}, [record for _, record in chunk]

        def call() -> None:
            self.counters.calls += 1
            with self.counters.timed():
                self._client.write_records(
                    DatabaseName=self.database,
                    TableName=table,
                    CommonAttributes=common,  # type: ignore[arg-type]
                    Records=records,  # type: ignore[arg-type]
                )

        try:
            retry_call(call, self._backoff, on_retry=self.counters.count_retry)
        except ClientError as exc:
            if error_code(exc) == "ValidationException":
                self._isolate(table, chunk, exc)
                return
            if error_code(exc) != "RejectedRecordsException":
                raise SinkError(
                    f"WriteRecords to {self.database}.{table} failed: {describe_error(exc)}"
                ) from exc
            # The service stored every record it did not list.
            listed: list[Any] = exc.response.get("RejectedRecords", [])  # type: ignore[assignment]
            rejected = {
                int(r["RecordIndex"]): r for r in listed if 0 <= int(r["RecordIndex"]) < len(chunk)
            }
            for index, entry in sorted(rejected.items()):
                point, record = chunk[index]
                if is_superseded(entry, record, versioned=isinstance(point, VersionedPoint)):
                    self.counters.stale_skipped += 1
                else:
                    self._rejected(point, str(entry.get("Reason", "rejected")))
            self.counters.items_written += len(chunk) - len(rejected)
        except BotoCoreError as exc:
            raise SinkError(
                f"WriteRecords to {self.database}.{table} failed: {describe_error(exc)}"
            ) from exc
        else:
            self.counters.items_written += len(chunk)

    def _isolate(self, table: str, chunk: list[tuple[TimePoint, Record]], exc: ClientError) -> None:
        """Write the valid records of a chunk refused as invalid; reject the invalid ones."""
        if len(chunk) == 1:
            self._rejected(chunk[0][0], bounded_reason(TIMESTREAM_VALIDATION, describe_error(exc)))
            return
        self.counters.splits += 1
        half = len(chunk) // 2
        self._write_chunk(table, chunk[:half])
        self._write_chunk(table, chunk[half:])

    def _rejected(self, point: TimePoint, reason: str) -> None:
        self.counters.rejected += 1
        self._reject(point, reason)
