"""Items the stores refuse as invalid go to the dead-letter output and the flush succeeds for
everything else: DynamoDB's ValidationException (moto enforces the key and item size limits),
Timestream's whole-call ValidationException (injected: moto validates nothing) and points
beyond a Timestream limit we know; the dead-letter sink itself never fails on its own keys."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.clock import HOUR_MS
from core.records import DeadLetter
from core.retry import Backoff
from sinks.deadletter import DeadLetterSink, read_dead_letters
from sinks.dynamodb import DynamoDBSink
from sinks.provision import ensure_command_table, ensure_dead_letter_table, ensure_timestream
from sinks.timestream import TimestreamSink
from tests.integration.test_sinks_dynamodb import Put, as_writes, scan
from tests.support.faulty import client_error
from tests.support.timestream import stored_records

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def no_sleep() -> Backoff:
    return Backoff(rng=random.Random(0), sleep=lambda _s: None)


class Rejects:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, str]] = []

    def __call__(self, item: Any, reason: str) -> None:
        self.seen.append((item, reason))


def good(n: int) -> Put:
    return Put({"pk": f"ASSET#a{n}", "sk": "STATE", "n": n})


@pytest.fixture
def ddb(aws: Callable[[str], Any]) -> Any:
    return aws("dynamodb")


@pytest.fixture
def table(ddb: Any, unique_name: Callable[[str], str]) -> str:
    name = unique_name("cmd")
    ensure_command_table(ddb, name)
    return name


def test_a_batch_with_invalid_items_writes_the_rest_and_rejects_exactly_those(
    ddb: Any, table: str
) -> None:
    rejects = Rejects()
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep(), reject=rejects)
    long_key = Put({"pk": "ASSET#" + "x" * 3_000, "sk": "STATE", "n": -1})
    too_large = Put({"pk": "ASSET#big", "sk": "STATE", "blob": "y" * 420_000})
    writes = [good(n) for n in range(20)] + [long_key] + [good(n) for n in range(20, 40)]
    writes.insert(7, too_large)
    for write in writes:
        sink.write(write)
    sink.flush()

    stored = scan(ddb, table)
    assert sorted(stored) == sorted((f"ASSET#a{n}", "STATE") for n in range(40))
    assert sorted(item["pk"][:10] for item, _ in rejects.seen) == ["ASSET#big", "ASSET#xxxx"]
    for _, reason in rejects.seen:
        assert reason.startswith("dynamodb_validation: ValidationException: "), reason
    assert sink.counters.rejected == 2 and sink.buffered == 0
    assert sink.counters.splits > 0


def test_a_conditional_write_refused_as_invalid_is_rejected(ddb: Any, table: str) -> None:
    rejects = Rejects()
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep(), reject=rejects)
    sink.write(Put({"pk": "ASSET#" + "z" * 3_000, "sk": "STATE", "ts_ms": 5}, "ts_ms"))
    sink.write(Put({"pk": "ASSET#ok", "sk": "STATE", "ts_ms": 5}, "ts_ms"))
    sink.flush()

    assert list(scan(ddb, table)) == [("ASSET#ok", "STATE")]
    assert [reason.split(":")[0] for _, reason in rejects.seen] == ["dynamodb_validation"]
    assert rejects.seen[0][0]["pk"] == "ASSET#" + "z" * 3_000


def test_without_a_reject_callback_an_invalid_item_still_fails_the_flush(
    ddb: Any, table: str
) -> None:
    sink = DynamoDBSink(ddb, table, as_writes, no_sleep())
    sink.write(Put({"pk": "ASSET#" + "x" * 3_000, "sk": "STATE"}))
    with pytest.raises(Exception, match="ValidationException"):
        sink.flush()


def test_the_dead_letter_sink_stores_letters_with_huge_detail_keys_and_reasons(
    ddb: Any, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("dead")
    ensure_dead_letter_table(ddb, name)
    sink = DeadLetterSink(ddb, name, no_sleep())
    huge = DeadLetter(
        "shardId-000000000000",
        12,
        0,
        "p" * 256,
        "dynamodb",
        "dynamodb_validation: " + "r" * 50_000,
        b"x" * 700_000,
        NOW_MS,
        detail_key="ASSET#" + "k" * 5_000 + "\ud800",
    )
    other = DeadLetter("shardId-000000000000", 12, 0, "p", "dynamodb", "r", b"", NOW_MS, "k2")
    sink.write(huge)
    sink.write(other)
    sink.flush()

    letters = read_dead_letters(ddb, name)
    assert len(letters) == 2
    stored = next(letter for letter in letters if letter.detail_key != "k2")
    assert stored.data == huge.data
    assert stored.reason.startswith("dynamodb_validation: rrr") and len(stored.reason) == 1_000


@dataclass(frozen=True)
class Point:
    table: str
    time_ms: int
    measures: Mapping[str, float | int | str | bool]
    dimensions: Mapping[str, str] = field(default_factory=lambda: {"asset": "a1"})
    measure_name: str = "m"


class RefusesMarkedRecords:
    """A real Timestream client that refuses, as a whole, a call holding a record whose
    `asset` dimension starts with "refuse" (the service's ValidationException)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def write_records(self, **kwargs: Any) -> Any:
        self.calls += 1
        common = kwargs.get("CommonAttributes", {}).get("Dimensions", [])
        for record in kwargs["Records"]:
            for dimension in record.get("Dimensions", []) + common:
                if dimension["Value"].startswith("refuse"):
                    raise client_error("write_records", "ValidationException", "bad record")
        return self._client.write_records(**kwargs)


def test_timestream_isolates_records_refused_as_invalid_and_checks_dimension_size(
    aws: Callable[[str], Any], moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    tsw = aws("timestream-write")
    database = unique_name("ts")
    ensure_timestream(
        tsw,
        database,
        ["events"],
        memory_retention_hours=24,
        magnetic_retention_days=365,
        enable_magnetic_writes=True,
    )
    client = RefusesMarkedRecords(tsw)
    rejects = Rejects()
    sink = TimestreamSink(
        client,  # type: ignore[arg-type]
        database,
        lambda o: [o] if isinstance(o, Point) else [],
        no_sleep(),
        memory_retention_ms=24 * HOUR_MS,
        magnetic_store_writes=True,
        now_ms=lambda: NOW_MS,
        reject=rejects,
    )
    points = [Point("events", NOW_MS - i, {"v": i}, {"asset": f"a{i}"}) for i in range(60)]
    points[13] = Point("events", NOW_MS - 13, {"v": 13}, {"asset": "refuse-13"})
    points[44] = Point("events", NOW_MS - 44, {"v": 44}, {"asset": "refuse-44"})
    points.append(Point("events", NOW_MS, {"v": 1}, {"asset": "h" * 2_049}))
    for point in points:
        sink.write(point)
    sink.flush()

    stored = stored_records(moto_endpoint, database, "events")
    assert len(stored) == 58
    reasons = sorted((p.dimensions["asset"][:9], r.split(":")[0]) for p, r in rejects.seen)
    assert reasons == [
        ("hhhhhhhhh", "invalid_point"),
        ("refuse-13", "timestream_validation"),
        ("refuse-44", "timestream_validation"),
    ]
    assert sink.buffered == 0
