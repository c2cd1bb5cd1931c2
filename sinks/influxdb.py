"""The query model sink for InfluxDB (Amazon Timestream for InfluxDB, InfluxDB OSS 1.8/v2/v3).

The same points as the Timestream sink (`domain.views.time_points`), one line each:
measurement = the point's table (`events`, `usage`), tags = its dimensions (`site`,
`building`, `room`, `asset`, `level` above the asset) plus `measure` (the Timestream measure
name: `usage`, `usage_1d`, `fault_opened`, ...), fields = its measures, time = `time_ms`.
InfluxDB identifies a point by measurement, tag set and time, and a second write of the same
point replaces the first: replays overwrite, never duplicate.

An overwrite has no condition, so versions are kept moving forward before writing
(`sinks.versions`): at flush, a point whose event the command model holds in a higher version
(`superseded`, filled by the command-model sink's flush just before) is not written, nor is one
that a higher version of the same point in the buffer replaces; each counts in
`stale_skipped`. A lower version is a no-op, never a dead letter.

Flush writes batches bounded by points and by bytes, gzip-compressed:
- 2xx: written.
- 429 and 5xx, connection errors, timeouts: the same batch again after `Retry-After` when
  the server sent one, else a capped exponential backoff with full jitter; after
  `backoff.max_attempts` calls the flush raises `SinkError` (the checkpoint is aborted and
  every unwritten point stays buffered).
- 400 (some line is bad; InfluxDB 1.8 names the first one and may have written the others):
  the batch is bisected until the bad lines stand alone; each is handed to `reject` with the
  server's reason, and every other line is (re)written. Re-writes are harmless: they overwrite.
- 401/403: `SinkError` at once, saying the token was refused.
- 413 (batch too large for the server): bisected like a 400, without rejecting single lines.
Points that cannot be encoded (NaN, a line break in a value, ...) go to `reject` on `write`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from core.errors import SinkError
from core.retry import Backoff
from sinks.base import SinkCounters
from sinks.influxhttp import InfluxHTTP, WriteResponse
from sinks.lineprotocol import encode_line
from sinks.rejects import Reject
from sinks.timestream import INVALID_POINT, SelectPoints, TimePoint
from sinks.versions import Superseded, forward_only

MEASURE_TAG: Final = "measure"
"""The tag holding the point's measure name (Timestream's `measure_name`)."""

MAX_RETRY_AFTER_MS: Final = 60_000
"""A Retry-After longer than this is shortened to it: a flush must end eventually."""


def point_line(point: TimePoint) -> str:
    """The line of one query-model point (see the module docstring for the mapping)."""
    tags = dict(point.dimensions)
    tags[MEASURE_TAG] = point.measure_name
    return encode_line(point.table, tags, point.measures, point.time_ms)


@dataclass(frozen=True)
class BatchLimits:
    """A batch holds at most `points` lines and `bytes` uncompressed bytes (a single line
    longer than `bytes` still goes, alone). InfluxDB suggests 5,000 lines per write."""

    points: int = 5_000
    bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if self.points < 1 or self.bytes < 1:
            raise ValueError("batch limits must be positive")


def batches(lines: list[bytes], limits: BatchLimits) -> Iterable[tuple[int, int]]:
    """`(start, end)` index ranges of `lines`, each within `limits`."""
    start = 0
    while start < len(lines):
        end = start
        size = 0
        while end < len(lines) and end - start < limits.points:
            if end > start and size + len(lines[end]) + 1 > limits.bytes:
                break
            size += len(lines[end]) + 1
            end += 1
        yield start, end
        start = end


Write = Callable[[bytes], WriteResponse]


class InfluxDBSink:
    """Sink writing the points `select` derives from each agent output as line protocol.

    A failed flush raises `SinkError` and the checkpoint is aborted; points not yet written or
    rejected stay buffered. A rejected point is handed to `reject` exactly once and leaves the
    buffer, so the checkpoint can proceed.
    """

    def __init__(
        self,
        client: InfluxHTTP,
        select: SelectPoints,
        backoff: Backoff,
        *,
        reject: Reject[TimePoint],
        limits: BatchLimits | None = None,
        gzip_body: bool = True,
        superseded: Superseded | None = None,
    ) -> None:
        self.counters = SinkCounters()
        self._client = client
        self._select = select
        self._backoff = backoff
        self._reject = reject
        self._limits = limits or BatchLimits()
        self._gzip = gzip_body
        self._superseded = superseded
        self._points: list[TimePoint] = []
        self._lines: list[bytes] = []

    @property
    def buffered(self) -> int:
        """Points waiting for a flush."""
        return len(self._lines)

    def write(self, item: object) -> None:
        for point in self._select(item):
            try:
                line = point_line(point).encode()
            except (TypeError, ValueError) as exc:
                self._rejected(point, f"{INVALID_POINT}: {exc}")
                continue
            self._points.append(point)
            self._lines.append(line)

    def flush(self) -> None:
        """Write every buffered point, batch by batch; a batch leaves the buffer only once
        all its lines are written or rejected. Superseded points are dropped first."""
        stale = forward_only(self._points, self._superseded)
        if stale:
            self.counters.stale_skipped += len(stale)
            self._points = [p for i, p in enumerate(self._points) if i not in stale]
            self._lines = [line for i, line in enumerate(self._lines) if i not in stale]
        while self._lines:
            _, end = next(iter(batches(self._lines, self._limits)))
            self._write_range(0, end)
            del self._lines[:end]
            del self._points[:end]
        if self._superseded is not None:
            self._superseded.clear()

    def discard(self) -> None:
        self._points.clear()
        self._lines.clear()
        if self._superseded is not None:
            self._superseded.clear()

    def _write_range(self, start: int, end: int) -> None:
        """Write lines [start, end): retried as a whole, bisected on 400/413."""
        response = self._send(start, end)
        if response.ok:
            self.counters.items_written += end - start
            return
        if response.status in (400, 413, 422) and end - start > 1:
            middle = (start + end) // 2
            self._write_range(start, middle)
            self._write_range(middle, end)
            return
        if response.status in (400, 422):
            self._rejected(self._points[start], f"influxdb_rejected: {response.body}")
            return
        raise SinkError(self._failure(response, end - start))

    def _send(self, start: int, end: int) -> WriteResponse:
        """One batch, retried on 429/5xx/connection errors; any other response is returned."""
        body = b"\n".join(self._lines[start:end])
        retry = 0
        while True:
            self.counters.calls += 1
            try:
                response = self._client.write(body, gzip_body=self._gzip)
            except OSError as exc:
                if retry + 1 >= self._backoff.max_attempts:
                    raise SinkError(
                        f"InfluxDB write to {self._client.url} failed after {retry + 1} call(s);"
                        f" {end - start} point(s) not written: {exc}"
                    ) from exc
                retry_after_ms = None
            else:
                if response.status != 429 and response.status < 500:
                    return response
                if retry + 1 >= self._backoff.max_attempts:
                    return response
                if response.status == 429:
                    self.counters.throttles += 1
                retry_after_ms = response.retry_after_ms
            self.counters.retries += 1
            if retry_after_ms is not None:
                self._backoff.sleep(min(retry_after_ms, MAX_RETRY_AFTER_MS) / 1000)
            else:
                self._backoff.pause(retry)
            retry += 1

    def _failure(self, response: WriteResponse, count: int) -> str:
        if response.status in (401, 403):
            return (
                f"InfluxDB at {self._client.url} refused the token (HTTP {response.status}: "
                f"{response.body}); check LUXFLOW_INFLUXDB_TOKEN or LUXFLOW_INFLUXDB_TOKEN_SECRET"
            )
        if response.status == 404:
            return (
                f"InfluxDB bucket {self._client.bucket!r} not found (HTTP 404: {response.body}); "
                "run `luxflow setup` or create the database"
            )
        return (
            f"InfluxDB write to {self._client.url} failed (HTTP {response.status}: "
            f"{response.body}); {count} point(s) not written"
        )

    def _rejected(self, point: TimePoint, reason: str) -> None:
        self.counters.rejected += 1
        self._reject(point, reason)
