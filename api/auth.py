"""Bearer-token access for the read API and the operator page.

The API takes `Authorization: Bearer <token>` (documented in the OpenAPI document as an HTTP
bearer scheme). The page also takes the session cookie that `POST /login` sets (a browser
cannot add a header to a navigation): HttpOnly, SameSite=Strict, Secure on https, holding a
signed session (`api.sessions`), never the token.

A candidate is compared with every accepted token (the current one, and the previous one
during a rotation) as SHA-256 digests with `hmac.compare_digest`: the time taken depends on
neither the token's length nor how much of it matched, nor on which token matched. A refused
credential is answered after `failure_delay_s`, awaited on the event loop so that a flood of
guesses holds no worker thread, and the rate limit charges it extra. A request with no
credential at all is no guess: 401 at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.sessions import Sessions
from lighting.secrets import MAX_API_TOKEN_CHARS

COOKIE: Final = "luxflow_session"
FAILED_AUTH: Final = "luxflow.failed_auth"
"""Key of the ASGI scope that marks a request whose credential was refused."""
MAX_CANDIDATE_CHARS: Final = MAX_API_TOKEN_CHARS
"""A longer credential is refused unread; tokens this long at most are accepted at start."""
bearer = HTTPBearer(auto_error=False, description="The token of LUXFLOW_API_TOKEN.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a valid bearer token is required",
        headers={"WWW-Authenticate": 'Bearer realm="luxflow"'},
    )


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Tokens:
    """The accepted tokens of this server (current first), and the dependencies that check
    a request's credential against them."""

    def __init__(
        self, tokens: Sequence[str], sessions: Sessions, failure_delay_s: float = 0.5
    ) -> None:
        if not tokens or not all(tokens):
            raise ValueError("the read API needs at least one non-empty token")
        self._digests = [_digest(token) for token in tokens]
        self.sessions = sessions
        self._failure_delay_s = failure_delay_s

    def matches(self, candidate: str | None) -> bool:
        if candidate is None or len(candidate) > MAX_CANDIDATE_CHARS:
            return False
        digest = _digest(candidate)
        matched = False
        for expected in self._digests:
            matched |= hmac.compare_digest(digest, expected)
        return matched

    async def refuse(self, request: Request) -> HTTPException:
        """The 401 of a refused credential, after the failure delay; marks the request so
        that the rate limit charges the client for it (`FAILED_AUTH`)."""
        request.scope[FAILED_AUTH] = True
        await asyncio.sleep(self._failure_delay_s)
        return unauthorized()

    def api(self) -> Callable[[Request, Credentials], Awaitable[None]]:
        """Dependency of the JSON API: the bearer header only."""

        async def check(request: Request, credentials: Credentials) -> None:
            if credentials is None:
                raise unauthorized()
            if not self.matches(credentials.credentials):
                raise await self.refuse(request)

        return check

    def page(self) -> Callable[[Request, Credentials], Awaitable[None]]:
        """Dependency of the operator page: the bearer header or a valid session cookie."""

        async def check(request: Request, credentials: Credentials) -> None:
            cookie = request.cookies.get(COOKIE)
            if credentials is None and cookie is None:
                raise unauthorized()
            if credentials is not None and self.matches(credentials.credentials):
                return
            if self.sessions.valid(cookie):
                return
            raise await self.refuse(request)

        return check
