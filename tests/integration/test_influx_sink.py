"""InfluxDBSink against a real influxd: exact points stored, idempotent re-writes, exactly the
bad points dead-lettered, retries honouring Retry-After, and a refused token."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from core.errors import SinkError
from core.retry import Backoff
from domain.events import EnergySpike, Fault, UsageReport
from domain.views import TimePoint, time_points
from emulators.influxd import Influxd
from sinks.influxdb import BatchLimits, InfluxDBSink
from sinks.influxhttp import InfluxHTTP
from tests.support.influx import FaultyInflux, stored_points

pytestmark = [pytest.mark.integration, pytest.mark.influx]

T0 = 1_795_737_600_000


def events(count: int) -> list[Any]:
    out: list[Any] = []
    for i in range(count):
        ids = ("site-1", "b,1", "room 1", f'lamp="{i}"')  # characters that need escaping
        out.append(UsageReport(*ids, T0 + i * 3_600_000, T0 + (i + 1) * 3_600_000, 0.1 * i + 0.05,
                               3_600_000, 1.0))  # fmt: skip
        out.append(Fault(*ids, 'E\\42 "quoted"', T0 + i, "cleared", T0 + i + 60_000))
    out.append(EnergySpike("site-1", "", "", "", T0, T0 + 60_000, 900.0, 500.0, 6.5, "site_demand",
                           "site"))  # fmt: skip
    return out


@pytest.fixture
def client(influxd: Influxd) -> InfluxHTTP:
    client = InfluxHTTP(influxd.endpoint, f"t_{uuid.uuid4().hex[:10]}", influxd.token)
    client.create_database()
    return client


def no_sleep_backoff(slept: list[float] | None = None) -> Backoff:
    record: Callable[[float], None] = slept.append if slept is not None else lambda _s: None
    return Backoff(rng=random.Random(1), sleep=record)


def expected_points(items: list[Any]) -> dict[Any, dict[str, Any]]:
    points: dict[Any, dict[str, Any]] = {}
    for item in items:
        for p in time_points(item):
            tags = tuple(sorted({**p.dimensions, "measure": p.measure_name}.items()))
            points[(p.table, tags, p.time_ms)] = dict(p.measures)
    return points


def test_points_are_stored_exactly_and_rewrites_overwrite(client: InfluxHTTP) -> None:
    rejected: list[tuple[object, str]] = []
    sink = InfluxDBSink(
        client,
        time_points,
        no_sleep_backoff(),
        reject=lambda p, r: rejected.append((p, r)),
        limits=BatchLimits(points=7, bytes=2_000),
    )
    items = events(20)
    for item in items:
        sink.write(item)
    sink.flush()
    assert stored_points(client) == expected_points(items)
    assert sink.counters.calls >= 41 // 7
    # A replay writes the same points again: still one of each.
    for item in items:
        sink.write(item)
    sink.flush()
    assert stored_points(client) == expected_points(items)
    assert rejected == []
    assert sink.buffered == 0


def test_a_point_the_server_refuses_is_rejected_alone_and_the_rest_is_written(
    client: InfluxHTTP,
) -> None:
    rejected: list[tuple[object, str]] = []

    def select(item: object) -> list[TimePoint]:
        return [item] if isinstance(item, TimePoint) else time_points(item)

    sink = InfluxDBSink(
        client, select, no_sleep_backoff(), reject=lambda p, r: rejected.append((p, r))
    )
    sink.write(events(1)[0])
    sink.flush()  # kwh is a float field now
    good = events(30)
    # An integer kwh conflicts with the stored float field: InfluxDB answers 400.
    bad = TimePoint("usage", {"site": "site-1", "level": "site"}, "usage", {"kwh": 7}, T0 + 5)
    mixed: list[Any] = [*good[:17], bad, *good[17:]]
    for item in mixed:
        sink.write(item)
    sink.flush()
    assert [(p, r.split(":")[0]) for p, r in rejected] == [(bad, "influxdb_rejected")]
    assert "field type conflict" in rejected[0][1]
    assert stored_points(client) == expected_points(good)
    assert sink.counters.rejected == 1
    assert sink.counters.calls <= 1 + 2 * 7  # bisected: about 2 log2(61) calls, not 61


def test_throttled_and_unavailable_writes_wait_retry_after_then_succeed(
    client: InfluxHTTP,
) -> None:
    slept: list[float] = []
    faulty = FaultyInflux(client, refuse=3, status=429, retry_after_s="2")
    sink = InfluxDBSink(faulty, time_points, no_sleep_backoff(slept), reject=lambda p, r: None)  # type: ignore[arg-type]
    items = events(3)
    for item in items:
        sink.write(item)
    sink.flush()
    assert slept == [2.0, 2.0, 2.0]
    assert sink.counters.throttles == 3
    assert stored_points(client) == expected_points(items)

    slept.clear()
    faulty = FaultyInflux(client, refuse=2, status=503)  # no Retry-After: jittered backoff
    sink = InfluxDBSink(faulty, time_points, no_sleep_backoff(slept), reject=lambda p, r: None)  # type: ignore[arg-type]
    sink.write(items[0])
    sink.flush()
    assert len(slept) == 2
    assert 0 <= slept[0] <= 0.05 and 0 <= slept[1] <= 0.1  # full jitter under 50, 100 ms


def test_unavailable_past_the_attempts_fails_the_flush_and_keeps_the_buffer(
    client: InfluxHTTP,
) -> None:
    faulty = FaultyInflux(client, refuse=100, status=503)
    sink = InfluxDBSink(faulty, time_points, no_sleep_backoff(), reject=lambda p, r: None)  # type: ignore[arg-type]
    items = events(2)
    for item in items:
        sink.write(item)
    with pytest.raises(SinkError, match="HTTP 503"):
        sink.flush()
    assert sink.buffered == 5
    faulty.refuse = 0
    sink.flush()
    assert stored_points(client) == expected_points(items)


def test_a_refused_token_fails_the_flush_with_a_clear_message(
    influxd: Influxd, client: InfluxHTTP
) -> None:
    bad = InfluxHTTP(influxd.endpoint, client.bucket, "luxflow:not-the-password")
    sink = InfluxDBSink(bad, time_points, no_sleep_backoff(), reject=lambda p, r: None)
    sink.write(events(1)[0])
    with pytest.raises(SinkError, match=r"refused the token \(HTTP 401"):
        sink.flush()
    assert sink.buffered == 1
    assert stored_points(client) == {}
