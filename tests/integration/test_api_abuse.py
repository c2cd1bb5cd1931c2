"""The read API under abuse, on a real influxd holding 500,000 usage points and moto: every
page's work is bounded (or refused with the limit named), four abusive clients do not starve
a normal one, oversized bodies get 413 without the server's memory growing.

The bound stated and checked here: one energy page runs at most `PAGE_QUERIES` (6) InfluxQL
statements, returns at most 10,000 rows, and the slices it fetches span at most
`PAGE_POINTS` (200,000) stored points; a range over `MAX_WINDOWS` (10,000) windows is 400.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.clock import HOUR_MS
from emulators.influxd import Influxd
from lighting.read.cursors import Cursors
from lighting.read.energy import MAX_WINDOWS, PAGE_POINTS, PAGE_QUERIES, EnergyReader
from tests.support.influx import influx_client
from tests.support.scan import (
    SITE,
    START_MS,
    Scan,
    daily_kwh,
    hourly_rows,
    load_scan,
    room_ids,
)
from tests.support.serve import request, rss_bytes, serving_process

pytestmark = [pytest.mark.integration, pytest.mark.influx]

SERIES = len(room_ids())


@pytest.fixture(scope="module")
def scan(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    influxd: Influxd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Scan:
    name = f"scan{uuid.uuid4().hex[:8]}"
    return load_scan(moto_endpoint, aws, name, tmp_path_factory.mktemp("scan"), influxd)


@pytest.fixture(scope="module")
def server(scan: Scan) -> Iterator[tuple[str, int]]:
    with serving_process(scan.deployment) as (base, process):
        yield base, process.pid


def energy_path(scan: Scan, **params: Any) -> str:
    query = {
        "scope": "room",
        "every": "1h",
        "start_ms": START_MS,
        "end_ms": scan.end_ms,
        "site_id": SITE,
        **params,
    }
    return f"/api/v1/energy?{urllib.parse.urlencode(query)}"


class CountingInflux:
    """The real InfluxDB client, keeping every statement it was asked to run."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.statements: list[str] = []

    def query(self, influxql: str, *, method: str = "GET") -> list[dict[str, Any]]:
        self.statements.append(influxql)
        result: list[dict[str, Any]] = self.real.query(influxql, method=method)
        return result


def fetched_hours(statement: str) -> int:
    """Hours a row-fetching statement spans (0 for counts and first())."""
    if not statement.startswith("SELECT sum"):
        return 0
    start, end = map(int, re.findall(r"time [<>]=? (\d+)ms", statement))
    return -(-(end - start) // HOUR_MS)


def test_the_500k_point_scan_reads_a_bounded_slice_per_page(scan: Scan) -> None:
    """In process, through the reader the API uses, so each page's statements can be seen."""
    influx = CountingInflux(influx_client(scan.deployment))
    reader = EnergyReader(influx, Cursors.ephemeral())  # type: ignore[arg-type]
    expected = hourly_rows()
    cursor: str | None = None
    got: list[dict[str, Any]] = []
    for _ in range(6):
        influx.statements.clear()
        page = reader.energy(
            "room", "1h", START_MS, scan.end_ms, site_id=SITE, limit=7_000, cursor=cursor
        )
        assert len(influx.statements) <= PAGE_QUERIES
        assert sum(fetched_hours(s) for s in influx.statements) * SERIES <= PAGE_POINTS
        assert 0 < len(page.items) <= 7_000
        got += [vars(row) for row in page.items]
        cursor = page.next_cursor
        assert cursor is not None
    # Six pages of 7,000 rows cross slice boundaries mid-slice: no row lost or repeated.
    assert got == expected[: len(got)]
    assert len(got) == 42_000


def test_the_500k_point_scan_over_http_answers_its_first_rows_at_once(
    scan: Scan, server: tuple[str, int]
) -> None:
    base, _ = server
    expected = hourly_rows(hours=101)
    one = request(base, energy_path(scan, limit=1), token=scan.token)
    assert one.status == 200, one.body
    assert one.body["items"] == expected[:1]
    assert one.body["next_cursor"]
    full = request(base, energy_path(scan, limit=10_000), token=scan.token)
    assert full.status == 200, full.body
    assert full.body["items"] == expected[:10_000]
    second = request(
        base, energy_path(scan, limit=10_000, cursor=full.body["next_cursor"]), token=scan.token
    )
    assert second.status == 200
    assert second.body["items"][:100] == expected[10_000:10_100]


def test_every_page_of_the_daily_scan_together_is_the_whole_answer(
    scan: Scan, server: tuple[str, int]
) -> None:
    base, _ = server
    got: dict[tuple[str, int], float] = {}
    cursor = None
    pages = 0
    while True:
        params = {"every": "1d", "limit": 10_000, **({"cursor": cursor} if cursor else {})}
        reply = request(base, energy_path(scan, **params), token=scan.token)
        assert reply.status == 200, reply.body
        for row in reply.body["items"]:
            key = (row["room_id"], row["window_start_ms"])
            assert key not in got
            got[key] = row["kwh"]
        pages += 1
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    expected = daily_kwh()
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - v) < 1e-6 for k, v in expected.items())
    assert pages >= 3  # 20,900 rows: bounded pages, not one answer


def test_a_range_over_the_window_limit_is_400_naming_the_limit(
    scan: Scan, server: tuple[str, int]
) -> None:
    base, _ = server
    end = START_MS + (MAX_WINDOWS + 1) * HOUR_MS
    reply = request(base, energy_path(scan, end_ms=end), token=scan.token)
    assert reply.status == 400
    assert "MAX_WINDOWS" in reply.body["detail"] and str(MAX_WINDOWS) in reply.body["detail"]


def test_four_abusive_clients_do_not_starve_a_normal_one(
    scan: Scan, server: tuple[str, int]
) -> None:
    base, _ = server
    heavy = energy_path(scan, limit=10_000)
    # Another rate-limit bucket per loopback address; each sends its scans back to back, two
    # at a time, for as long as the normal client is being served.
    abusers = [f"127.0.0.{n}" for n in range(2, 6)]
    statuses: list[int] = []
    started = threading.Barrier(2 * len(abusers) + 1)
    done = threading.Event()

    def abuse(address: str) -> None:
        started.wait()
        for _ in range(200):
            statuses.append(request(base, heavy, token=scan.token, source=address).status)
            if done.is_set():
                return

    threads = [threading.Thread(target=abuse, args=(a,)) for a in abusers * 2]
    for thread in threads:
        thread.start()
    started.wait()
    building, room = room_ids()[37]
    normal_path = energy_path(
        scan,
        start_ms=START_MS + 24 * HOUR_MS,
        end_ms=START_MS + 72 * HOUR_MS,
        building_id=building,
        room_id=room,
    )
    try:
        answers = [
            (
                request(base, normal_path, token=scan.token, source="127.0.0.6"),
                request(base, "/api/v1/buildings", token=scan.token, source="127.0.0.6"),
            )
            for _ in range(5)
        ]
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=300)
    expected = [r for r in hourly_rows(hours=72) if r["room_id"] == room][24:]
    for energy, buildings in answers:
        assert energy.status == 200, energy.body
        assert energy.body == {"items": expected, "next_cursor": None}
        assert buildings.status == 200
        assert [b["site_id"] for b in buildings.body["items"]] == [
            "site-0001",
            "site-0002",
            "site-0003",
        ]
    # The abusers were served bounded pages or told to wait, never an error.
    assert len(statuses) >= 2 * len(abusers)
    assert set(statuses) <= {200, 429}


def post_with_declared_length(base: str, declared: int, send_bytes: int) -> tuple[int, int]:
    """POST /login declaring `declared` bytes and sending up to `send_bytes` of them while
    the server lets us; returns (status, bytes the socket took)."""
    return _post(base, f"Content-Length: {declared}\r\n", send_bytes, chunked=False)


def post_chunked(base: str, send_bytes: int) -> tuple[int, int]:
    return _post(base, "Transfer-Encoding: chunked\r\n", send_bytes, chunked=True)


def _post(base: str, header: str, send_bytes: int, *, chunked: bool) -> tuple[int, int]:
    port = urllib.parse.urlsplit(base).port
    sock = socket.create_connection(("127.0.0.1", port or 80), timeout=30)
    sent = 0
    reply = bytearray()

    def send_body() -> None:
        nonlocal sent
        block = b"token=" + b"x" * (1 << 20)
        try:
            while sent < send_bytes:
                data = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
                sock.sendall(data)
                sent += len(block)
        except OSError:
            return  # the server answered and closed: what it should do

    try:
        sock.sendall(
            f"POST /login HTTP/1.1\r\nHost: x\r\n{header}"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
        )
        sender = threading.Thread(target=send_body)
        sender.start()
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        with contextlib.suppress(OSError):  # the server may have closed first
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=60)
    finally:
        sock.close()
    return int(reply.split(b" ")[1]), sent


def test_oversized_bodies_get_413_and_the_server_memory_does_not_grow(
    server: tuple[str, int],
) -> None:
    base, pid = server
    before = rss_bytes(pid)
    results = []
    for _ in range(3):
        results.append(post_with_declared_length(base, 300 * 2**20, 300 * 2**20))
        results.append(post_chunked(base, 300 * 2**20))
    after = rss_bytes(pid)
    assert [status for status, _ in results] == [413] * 6
    # The server stopped reading long before 300 MB: it took at most a few socket buffers.
    assert all(sent < 64 * 2**20 for _, sent in results), results
    assert after - before < 40 * 2**20, (before, after)
    assert request(base, "/healthz").status == 200


def test_a_page_of_the_api_needs_no_memory_for_what_it_does_not_return(
    scan: Scan, server: tuple[str, int]
) -> None:
    """The old reader fetched every row of the range before paging; now a limit=1 page of the
    500k-point range leaves the server's memory as it was."""
    base, pid = server
    before = rss_bytes(pid)
    for _ in range(5):
        assert request(base, energy_path(scan, limit=1), token=scan.token).status == 200
    assert rss_bytes(pid) - before < 20 * 2**20
