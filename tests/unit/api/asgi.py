"""Call an ASGI app in process, as uvicorn would, without a socket: one request in, the
status, headers and body out."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    read: int
    """Body bytes the app took from the request."""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name.lower()]
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def call(
    app: Any,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Iterable[bytes] = (),
    client: str = "127.0.0.1",
    scheme: str = "http",
) -> Answer:
    """One request to `app`; `body` is sent chunk by chunk, as a chunked upload would be."""
    parts = urllib.parse.urlsplit(path)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8080),
    }
    chunks = list(body) or [b""]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if chunks:
            chunk = chunks.pop(0)
            read += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(
        start["status"],
        [(k.decode().lower(), v.decode("latin-1")) for k, v in start.get("headers", [])],
        payload,
        read,
    )
