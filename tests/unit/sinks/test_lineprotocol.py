"""Line protocol encoding and the InfluxDB sink's batching and bisection, without a server."""

from __future__ import annotations

import random

import pytest

from core.errors import SinkError
from core.retry import Backoff
from domain.views import TimePoint
from sinks.influxdb import BatchLimits, InfluxDBSink, batches, point_line
from sinks.influxhttp import WriteResponse
from sinks.lineprotocol import encode_line


def test_escaping_follows_the_line_protocol_rules() -> None:
    line = encode_line(
        "my events,x",
        {"b key": "v,1=2", "a": "plain", "empty": ""},
        {"f=1": 'say "hi" \\ there', "n": 3, "ok": True, "x": 1.0},
        1_700_000_000_123,
    )
    assert line == (
        'my\\ events\\,x,a=plain,b\\ key=v\\,1\\=2 f\\=1="say \\"hi\\" \\\\ there",'
        "n=3i,ok=true,x=1.0 1700000000123"
    )


@pytest.mark.parametrize(
    ("fields", "tags", "message"),
    [
        ({"x": float("nan")}, {}, "nan"),
        ({"x": "two\nlines"}, {}, "line break"),
        ({}, {}, "at least one field"),
        ({"x": 1}, {"t": "ends\\"}, "backslash"),
        ({"x": 2**63}, {}, "64 bits"),
    ],
)
def test_unencodable_points_are_refused(
    fields: dict[str, object], tags: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_line("m", tags, fields, 0)


def test_a_point_carries_its_measure_name_as_a_tag() -> None:
    point = TimePoint("usage", {"site": "s", "level": "site"}, "usage_1d", {"kwh": 1.5}, 7)
    assert point_line(point) == "usage,level=site,measure=usage_1d,site=s kwh=1.5 7"


def test_batches_respect_points_and_bytes() -> None:
    lines = [b"x" * 10] * 7 + [b"y" * 100] + [b"z"]
    assert list(batches(lines, BatchLimits(points=3, bytes=40))) == [
        (0, 3), (3, 6), (6, 7), (7, 8), (8, 9),
    ]  # fmt: skip


class FakeServer:
    """Answers 400 to any batch containing a bad line, like InfluxDB; records batch sizes."""

    url = "http://fake"
    bucket = "b"

    def __init__(self, bad: set[bytes]) -> None:
        self.bad = bad
        self.batches: list[list[bytes]] = []
        self.stored: set[bytes] = set()

    def write(self, body: bytes, *, gzip_body: bool = True) -> WriteResponse:
        lines = body.split(b"\n")
        self.batches.append(lines)
        if self.bad & set(lines):
            self.stored |= set(lines) - self.bad  # InfluxDB 1.8 writes the good ones
            return WriteResponse(400, "partial write: bad")
        self.stored |= set(lines)
        return WriteResponse(204, "")


def points(n: int) -> list[TimePoint]:
    return [TimePoint("usage", {"site": "s"}, "usage", {"kwh": float(i)}, i) for i in range(n)]


def test_a_400_is_bisected_down_to_exactly_the_bad_points() -> None:
    all_points = points(64)
    bad_points = [all_points[5], all_points[40]]
    server = FakeServer({point_line(p).encode() for p in bad_points})
    rejected: list[object] = []
    sink = InfluxDBSink(
        server,  # type: ignore[arg-type]
        lambda p: [p],  # type: ignore[list-item]
        Backoff(sleep=lambda _s: None),
        reject=lambda p, _r: rejected.append(p),
    )
    for p in all_points:
        sink.write(p)
    sink.flush()
    assert rejected == bad_points
    assert server.stored == {point_line(p).encode() for p in all_points} - server.bad
    assert len(server.batches) <= 1 + 2 * 2 * 6  # two bad lines, depth log2(64)
    assert sink.buffered == 0


def test_connection_errors_are_retried_then_fail_the_flush_keeping_the_buffer() -> None:
    class Down:
        url, bucket = "http://down", "b"
        calls = 0

        def write(self, body: bytes, *, gzip_body: bool = True) -> WriteResponse:
            self.calls += 1
            raise ConnectionRefusedError("refused")

    down = Down()
    slept: list[float] = []
    sink = InfluxDBSink(
        down,  # type: ignore[arg-type]
        lambda p: [p],  # type: ignore[list-item]
        Backoff(max_attempts=4, rng=random.Random(3), sleep=slept.append),
        reject=lambda p, r: None,
    )
    for p in points(3):
        sink.write(p)
    with pytest.raises(SinkError, match="after 4 call"):
        sink.flush()
    assert down.calls == 4 and len(slept) == 3
    assert sink.buffered == 3
