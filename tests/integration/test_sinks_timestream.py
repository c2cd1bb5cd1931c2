"""TimestreamSink against a moto server. moto stores what WriteRecords sends (visible at
/moto-api/data.json) and enforces no retention, so the retention rule tested here is ours."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.clock import HOUR_MS
from core.errors import SinkError
from core.retry import Backoff
from sinks.provision import ensure_timestream
from sinks.timestream import OLDER_THAN_MEMORY_RETENTION, TimestreamSink
from sinks.versions import VersionedPoint
from tests.support.faulty import FaultyClient
from tests.support.timestream import (
    InlineCommonAttributes,
    TimestreamVersions,
    latest_by_identity,
    stored_records,
)

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


@dataclass(frozen=True)
class Point:
    table: str
    time_ms: int
    measures: Mapping[str, float | int | str | bool]
    dimensions: Mapping[str, str] = field(default_factory=lambda: {"site": "s1", "asset": "a1"})
    measure_name: str = "rollup"
    version: int = 1


def as_points(output: object) -> list[Point | VersionedPoint]:
    return [output] if isinstance(output, Point | VersionedPoint) else []


class Rejects:
    def __init__(self) -> None:
        self.seen: list[tuple[object, str]] = []

    def __call__(self, point: object, reason: str) -> None:
        self.seen.append((point, reason))


@pytest.fixture
def tsw(aws: Callable[[str], Any]) -> Any:
    return aws("timestream-write")


def make_db(tsw: Any, unique_name: Callable[[str], str], *, magnetic: bool) -> str:
    database = unique_name("ts")
    ensure_timestream(
        tsw,
        database,
        ["rollups", "events"],
        memory_retention_hours=24,
        magnetic_retention_days=365,
        enable_magnetic_writes=magnetic,
    )
    return database


def make_sink(client: Any, database: str, rejects: Rejects, *, magnetic: bool) -> TimestreamSink:
    return TimestreamSink(
        client,
        database,
        as_points,
        Backoff(rng=random.Random(0), sleep=lambda _s: None),
        memory_retention_ms=24 * HOUR_MS,
        magnetic_store_writes=magnetic,
        now_ms=lambda: NOW_MS,
        reject=rejects,
    )


def test_exact_count_per_table_at_most_100_per_call(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    faulty = FaultyClient(tsw).throttle("write_records", 2)
    rejects = Rejects()
    sink = make_sink(faulty, database, rejects, magnetic=False)
    for i in range(230):
        sink.write(Point("rollups", NOW_MS - i * 1_000, {"wh": i * 0.5, "n": i, "on": i % 2 == 0}))
    for i in range(57):
        sink.write(Point("events", NOW_MS - i, {"kind": "spike"}, {"asset": f"a{i}"}, "event"))
    sink.write("not a point")
    sink.flush()

    assert len(stored_records(moto_endpoint, database, "rollups")) == 230
    assert len(stored_records(moto_endpoint, database, "events")) == 57
    assert rejects.seen == []
    calls = faulty.requests["write_records"]
    assert all(len(call["Records"]) <= 100 for call in calls)
    assert [len(c["Records"]) for c in calls] == [100, 100, 100, 100, 30, 57]  # 2 throttled
    assert calls[0] == calls[1] == calls[2]  # throttled calls repeated whole
    assert calls[0]["CommonAttributes"]["MeasureValueType"] == "MULTI"
    assert calls[0]["CommonAttributes"]["TimeUnit"] == "MILLISECONDS"
    assert calls[0]["CommonAttributes"]["Dimensions"][0] == {
        "Name": "site",
        "Value": "s1",
        "DimensionValueType": "VARCHAR",
    }
    assert "Dimensions" not in calls[-1]["CommonAttributes"]  # event assets differ
    assert sink.counters.items_written == 287 and sink.counters.throttles == 2
    assert sink.buffered == 0
    first = stored_records(moto_endpoint, database, "rollups")[1]
    assert first["MeasureValues"] == [
        {"Name": "wh", "Value": "0.5", "Type": "DOUBLE"},
        {"Name": "n", "Value": "1", "Type": "BIGINT"},
        {"Name": "on", "Value": "false", "Type": "BOOLEAN"},
    ]
    assert first["Time"] == str(NOW_MS - 1_000)


def test_rejected_records_go_to_reject_and_the_rest_count_as_written(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    faulty = FaultyClient(tsw, seed=9, hold_back_fraction=0.1).partial("write_records", 1)
    rejects = Rejects()
    sink = make_sink(faulty, database, rejects, magnetic=False)
    points = [Point("rollups", NOW_MS - i, {"wh": float(i)}) for i in range(40)]
    for point in points:
        sink.write(point)
    sink.flush()

    held_times = {record["Time"] for record in faulty.held_back["write_records"]}
    assert len(held_times) == 4
    assert {str(p.time_ms) for p, _ in rejects.seen} == held_times  # type: ignore[attr-defined]
    assert {reason for _, reason in rejects.seen} == {"Record version conflict (injected)"}
    stored = stored_records(moto_endpoint, database, "rollups")
    assert len(stored) == 36
    assert {r["Time"] for r in stored} == {str(p.time_ms) for p in points} - held_times
    assert sink.counters.items_written == 36 and sink.counters.rejected == 4
    assert len(faulty.requests["write_records"]) == 1  # a rejection is not retried
    assert sink.buffered == 0


def test_old_points_are_rejected_when_magnetic_writes_are_off(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    rejects = Rejects()
    sink = make_sink(tsw, database, rejects, magnetic=False)
    fresh = Point("rollups", NOW_MS - 24 * HOUR_MS, {"wh": 1.0})  # exactly at the edge: kept
    old = Point("rollups", NOW_MS - 24 * HOUR_MS - 1, {"wh": 2.0})
    older = Point("events", NOW_MS - 30 * 24 * HOUR_MS, {"kind": "fault"})
    for point in (fresh, old, older):
        sink.write(point)
    sink.flush()

    assert rejects.seen == [
        (old, OLDER_THAN_MEMORY_RETENTION),
        (older, OLDER_THAN_MEMORY_RETENTION),
    ]
    assert [r["Time"] for r in stored_records(moto_endpoint, database, "rollups")] == [
        str(fresh.time_ms)
    ]
    assert stored_records(moto_endpoint, database, "events") == []
    assert sink.counters.rejected == 2 and sink.counters.items_written == 1


def test_old_points_are_written_when_magnetic_writes_are_on(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=True)
    described = tsw.describe_table(DatabaseName=database, TableName="rollups")["Table"]
    assert described["MagneticStoreWriteProperties"]["EnableMagneticStoreWrites"] is True
    rejects = Rejects()
    sink = make_sink(tsw, database, rejects, magnetic=True)
    sink.write(Point("rollups", NOW_MS - 24 * HOUR_MS - 1, {"wh": 2.0}))
    sink.write(Point("rollups", NOW_MS - 90 * 24 * HOUR_MS, {"wh": 3.0}))
    sink.flush()
    assert rejects.seen == []
    assert len(stored_records(moto_endpoint, database, "rollups")) == 2


def test_invalid_points_are_rejected_not_lost(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    rejects = Rejects()
    sink = make_sink(tsw, database, rejects, magnetic=False)
    bad = Point("rollups", NOW_MS, {"wh": float("nan")})
    sink.write(bad)
    sink.flush()
    assert [(p, r.split(":")[0]) for p, r in rejects.seen] == [(bad, "invalid_point")]


def test_a_failed_flush_keeps_the_points(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    faulty = FaultyClient(tsw).throttle("write_records", 10)
    rejects = Rejects()
    sink = make_sink(faulty, database, rejects, magnetic=False)
    for i in range(5):
        sink.write(Point("rollups", NOW_MS - i, {"wh": 1.0}))
    with pytest.raises(SinkError, match="ThrottlingException"):
        sink.flush()
    assert sink.buffered == 5
    sink.flush()
    assert len(stored_records(moto_endpoint, database, "rollups")) == 5


def test_discard_drops_the_buffer(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    sink = make_sink(tsw, database, Rejects(), magnetic=False)
    sink.write(Point("rollups", NOW_MS, {"wh": 1.0}))
    sink.discard()
    sink.flush()
    assert stored_records(moto_endpoint, database, "rollups") == []


def test_replayed_points_read_back_as_timestream_would_keep_them(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    database = make_db(tsw, unique_name, magnetic=False)
    sink = make_sink(InlineCommonAttributes(tsw), database, Rejects(), magnetic=False)
    points = [Point("rollups", NOW_MS - i, {"wh": float(i)}) for i in range(3)]
    for _ in range(2):  # the second pass is a replay after a crash
        for point in points:
            sink.write(point)
        sink.flush()
    sink.write(Point("rollups", NOW_MS, {"wh": 99.0}, version=2))  # a correction
    sink.flush()
    records = stored_records(moto_endpoint, database, "rollups")
    assert len(records) == 7  # moto appends; Timestream would upsert
    assert all(r["Dimensions"] and r["MeasureValueType"] == "MULTI" for r in records)
    latest = latest_by_identity("rollups", records)
    assert len(latest) == 3
    newest = latest[("rollups", (("asset", "a1"), ("site", "s1")), "rollup", str(NOW_MS))]
    assert newest["Version"] == 2 and newest["MeasureValues"][0]["Value"] == "99.0"


def test_a_lower_version_the_service_refuses_is_a_no_op_not_a_dead_letter(
    tsw: Any, moto_endpoint: str, unique_name: Callable[[str], str]
) -> None:
    """Without the command model's word (another worker wrote the fuller report), the
    service's own refusal of a lower version is what keeps the higher one."""
    database = make_db(tsw, unique_name, magnetic=False)
    rejects = Rejects()
    client = TimestreamVersions(tsw)

    def report(order: int, wh: float) -> VersionedPoint:
        return VersionedPoint("rollups", {"site": "s1", "asset": "a1"}, "usage", {"wh": wh},
                              NOW_MS, "e1", order)  # fmt: skip

    full = make_sink(client, database, rejects, magnetic=False)
    full.write(report(3_600_000, 60.0))
    full.flush()
    partial = make_sink(client, database, rejects, magnetic=False)
    partial.write(report(1_800_000, 30.0))
    partial.write(Point("rollups", NOW_MS - 1, {"wh": 1.0}))
    partial.write(Point("rollups", NOW_MS - 1, {"wh": 2.0}))  # an immutable fact, changed
    partial.flush()
    assert partial.counters.stale_skipped == 1
    assert [(point, reason[:40]) for point, reason in rejects.seen] == [
        (Point("rollups", NOW_MS - 1, {"wh": 2.0}), "A record with a higher or equal version ")
    ]
    latest = latest_by_identity("rollups", stored_records(moto_endpoint, database, "rollups"))
    stored = latest[("rollups", (("asset", "a1"), ("site", "s1")), "usage", str(NOW_MS))]
    assert (stored["Version"], stored["MeasureValues"][0]["Value"]) == (3_600_001, "60.0")
