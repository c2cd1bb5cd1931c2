"""ASGI middleware in front of every route: security headers, the rate limit, the body limit.

Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, so that a refused request is answered
before the app or the body is touched, and nothing is buffered: a body nobody reads stays in
the socket (uvicorn stops reading past 64 KiB and closes the connection after the answer).
Order (outermost first), as `create_app` installs them: `SecurityHeaders` (every response
carries the headers, a 413 or 429 too), `RateLimit` (a refused client costs one dictionary
look-up), `BodyLimit`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from fastapi import HTTPException

from api.auth import FAILED_AUTH
from api.limits import ApiLimits, RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNLIMITED_PATHS: Final = frozenset({"/healthz"})
"""The load balancer's health check is never rate-limited."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


async def _refuse(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = b'{"detail":"' + detail.encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def is_https(scope: Scope) -> bool:
    """The request reached us over https, or through a proxy that says it came over https
    (uvicorn already applies X-Forwarded-Proto of the proxies it trusts to the scheme; an
    untrusted header here can only make a cookie stricter, never weaker)."""
    forwarded = (_header(scope, b"x-forwarded-proto") or b"").split(b",")[0].strip().lower()
    return scope.get("scheme") == "https" or forwarded == b"https"


def security_headers(style_source: str) -> list[tuple[bytes, bytes]]:
    """The headers of every response. The page's only inline code is its `<style>` element,
    allowed by its hash; its one script comes from this server (`/page.js`) and may only
    fetch from it; nothing else may load, frame the page or post a form elsewhere."""
    digest = base64.b64encode(hashlib.sha256(style_source.encode()).digest()).decode()
    policy = (
        "default-src 'none'; "
        f"style-src 'sha256-{digest}'; "
        "script-src 'self'; "
        "connect-src 'self'; "
        "img-src 'self' data:; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityHeaders:
    """Adds `headers` to every HTTP response (HSTS too on https)."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self._app = app
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        extra = list(self._headers)
        if is_https(scope):
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {key.lower() for key, _ in extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self._app(scope, receive, send_with_headers)


class RateLimit:
    """Per-client token bucket and in-flight cap (`RateLimiter`): 429 with Retry-After. A
    refused credential (the scope marked `FAILED_AUTH`) costs `failure_cost` more tokens."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self._app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self._app(scope, receive, send)
            return
        client = str((scope.get("client") or ("unknown", 0))[0])
        retry_after = self._limiter.acquire(client)
        if retry_after is not None:
            await _refuse(
                send,
                429,
                f"too many requests: retry after {retry_after} s",
                [(b"retry-after", str(retry_after).encode())],
            )
            return
        try:
            await self._app(scope, receive, send)
        finally:
            self._limiter.release(client, failed_auth=bool(scope.get(FAILED_AUTH)))


class BodyLimit:
    """413 for a body over `limits.max_body_bytes`: at once when Content-Length says so (the
    body is never read), else as soon as the bytes the app reads pass it (a chunked upload):
    the read raises `HTTPException(413)`, which the app's exception handling answers."""

    def __init__(self, app: ASGIApp, limits: ApiLimits) -> None:
        self._app = app
        self._max = limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            await _refuse(send, 413, f"the body is limited to {self._max} bytes", [])
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise HTTPException(413, f"the body is limited to {self._max} bytes")
            return message

        await self._app(scope, limited_receive, send)
