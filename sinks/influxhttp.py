"""A small HTTP client for InfluxDB: line protocol to `/api/v2/write`, InfluxQL over `/query`.

These two endpoints are what InfluxDB OSS 1.8, InfluxDB v2 and InfluxDB 3 (and so Amazon
Timestream for InfluxDB) all accept, with `Authorization: Token <token>` (`user:password` on
1.8, an API token on v2/v3). Written over the standard library (`urllib.request`) instead of
influxdb-client: that client batches and retries on background threads of its own, while a
luxflow sink must write synchronously on `flush`, know exactly which lines failed, and leave
retries to `core.retry.Backoff`. Two HTTP calls do not justify a dependency in the image.
"""

from __future__ import annotations

import gzip
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import msgspec

from core.errors import LuxflowError


class InfluxError(LuxflowError):
    """InfluxDB answered with an error, or could not be reached."""


class InfluxAuthError(InfluxError):
    """InfluxDB refused the token (401/403): no retry will fix it."""


@dataclass(frozen=True)
class WriteResponse:
    """The status of one write call, its error text, and `Retry-After` in ms (if sent)."""

    status: int
    body: str
    retry_after_ms: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _retry_after_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(0, int(float(value) * 1000))
    except ValueError:
        return None  # an HTTP date: rare for InfluxDB; the backoff decides instead


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return text[:500]
    if isinstance(decoded, dict):
        return str(decoded.get("error") or decoded.get("message") or text)[:500]
    return text[:500]


class InfluxHTTP:
    """Write and query calls against one InfluxDB server and one bucket (`db[/rp]`)."""

    def __init__(self, url: str, bucket: str, token: str, *, timeout_ms: int = 10_000) -> None:
        if not url:
            raise ValueError("the InfluxDB URL is empty")
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.database = bucket.split("/", 1)[0]
        self._token = token
        self._timeout_s = timeout_ms / 1000

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._token}"} if self._token else {}

    def write(self, body: bytes, *, gzip_body: bool = True) -> WriteResponse:
        """POST newline-separated lines (precision ms). Returns the response, whatever its
        status; raises `OSError` (e.g. `URLError`) when the server cannot be reached."""
        query = urllib.parse.urlencode({"bucket": self.bucket, "precision": "ms"})
        headers = {**self._headers(), "Content-Type": "text/plain; charset=utf-8"}
        if gzip_body:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(
            f"{self.url}/api/v2/write?{query}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return WriteResponse(response.status, "")
        except urllib.error.HTTPError as exc:
            with exc:
                return WriteResponse(
                    exc.code,
                    _error_text(exc.read()),
                    _retry_after_ms(exc.headers.get("Retry-After")),
                )

    def query(self, influxql: str, *, method: str = "GET") -> list[dict[str, Any]]:
        """Run InfluxQL against the database; returns the `results` list. Raises
        `InfluxAuthError` on 401/403 and `InfluxError` on any other failure."""
        params = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ms"})
        if method == "GET":
            request = urllib.request.Request(f"{self.url}/query?{params}", headers=self._headers())
        else:
            request = urllib.request.Request(
                f"{self.url}/query",
                data=params.encode(),
                headers={**self._headers(), "Content-Type": "application/x-www-form-urlencoded"},
                method="POST",
            )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                payload = msgspec.json.decode(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                text = _error_text(exc.read())
            if exc.code in (401, 403):
                raise InfluxAuthError(
                    f"InfluxDB at {self.url} refused the token (HTTP {exc.code}: {text}): "
                    "check LUXFLOW_INFLUXDB_TOKEN or LUXFLOW_INFLUXDB_TOKEN_SECRET"
                ) from None
            raise InfluxError(f"InfluxQL query failed (HTTP {exc.code}): {text}") from None
        except OSError as exc:
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {exc}") from exc
        results: list[dict[str, Any]] = payload.get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxError(f"InfluxQL error: {result['error']}")
        return results

    def create_database(self) -> None:
        """`CREATE DATABASE` (idempotent on InfluxDB 1.8); v2/v3 create buckets out of band."""
        name = self.database.replace('"', '\\"')
        self.query(f'CREATE DATABASE "{name}"', method="POST")
