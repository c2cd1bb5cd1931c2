"""Bearer-token access for the read API and the operator page.

The API takes `Authorization: Bearer <token>` (documented in the OpenAPI document as an
HTTP bearer scheme). The page also takes the session cookie that `POST /login` sets (a
browser cannot add a header to a navigation): HttpOnly, SameSite=Strict, holding the same
token. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

COOKIE: Final = "luxflow_session"
bearer = HTTPBearer(auto_error=False, description="The token of LUXFLOW_API_TOKEN.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a valid bearer token is required",
        headers={"WWW-Authenticate": 'Bearer realm="luxflow"'},
    )


class Tokens:
    """The one token of this server, and the dependencies that check it."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the read API needs a non-empty token")
        self._token = token.encode()

    def matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    def api(self) -> Callable[[Credentials], None]:
        """Dependency of the JSON API: the bearer header only."""

        def check(credentials: Credentials) -> None:
            if credentials is None or not self.matches(credentials.credentials):
                raise unauthorized()

        return check

    def page(self) -> Callable[[Request, Credentials], None]:
        """Dependency of the operator page: the bearer header or the session cookie."""

        def check(request: Request, credentials: Credentials) -> None:
            if credentials is not None and self.matches(credentials.credentials):
                return
            if self.matches(request.cookies.get(COOKIE)):
                return
            raise unauthorized()

        return check
