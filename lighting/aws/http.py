"""Keep-alive HTTP(S) connections for the light client, and socket failures as botocore's
exceptions.

Failures map to what botocore raises for them, so `core.retry` classifies them the same way:
refused or unresolvable -> `EndpointConnectionError`; no connection within the connect
timeout -> `ConnectTimeoutError`; no answer within the read timeout -> `ReadTimeoutError`
(the request may have taken effect); closed or reset before the answer ->
`ConnectionClosedError`. Nothing is retried here: the callers' `Backoff` retries.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import select
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes


_Key = tuple[str, str, int]


class ConnectionPool:
    """Idle connections per (scheme, host, port), at most `max_idle` each, shared by threads:
    a request takes an idle connection or opens one, and gives it back once its answer was
    read whole. A kept connection the server closed meanwhile is noticed before reuse."""

    def __init__(
        self, *, connect_timeout_s: float = 5, read_timeout_s: float = 30, max_idle: int = 64
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._tls: Any = None

    def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme or "https"
        key: _Key = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        connection = self._take(key) or self._open(key, url)
        try:
            connection.request("POST", parts.path or "/", body, dict(headers))
            answer = connection.getresponse()
            response = Response(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            )
        except TimeoutError as exc:
            connection.close()
            raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectionClosedError(endpoint_url=url) from exc
        if answer.will_close:
            connection.close()
        else:
            self._give(key, connection)
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()
            if _usable(connection):
                return connection
            connection.close()

    def _give(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()

    def _open(self, key: _Key, url: str) -> http.client.HTTPConnection:
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout_s, context=self._tls_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout_s)
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except OSError as exc:
            connection.close()
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        assert connection.sock is not None
        connection.sock.settimeout(self._read_timeout_s)
        return connection

    def _tls_context(self) -> Any:
        with self._lock:
            if self._tls is None:
                import ssl

                self._tls = ssl.create_default_context(cafile=ca_bundle())
            return self._tls


def ca_bundle() -> str:
    """The CA bundle botocore verifies against, so both trust the same roots: certifi's when
    it is installed (it is optional: looked up, not imported), else the one botocore ships."""
    spec = importlib.util.find_spec("certifi")
    if spec is not None and spec.submodule_search_locations:
        bundle = os.path.join(next(iter(spec.submodule_search_locations)), "cacert.pem")
        if os.path.exists(bundle):
            return bundle
    return os.path.join(os.path.dirname(botocore.__file__), "cacert.pem")


def _usable(connection: http.client.HTTPConnection) -> bool:
    """False when the server closed the kept connection (readable with nothing asked means
    end of file or a stray byte: either way it cannot carry a request)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
