"""The read API's application: FastAPI on uvicorn, behind the guards of `api.guards`.

FastAPI because it derives the OpenAPI document (at `/openapi.json`) from the typed routes
and response models, validates query parameters, and is maintained and widely used; it runs
on Starlette, served by uvicorn. The routes are plain `def`s: the read model uses blocking
boto3 and urllib calls, which FastAPI runs in its thread pool. Swagger UI and ReDoc are off:
they load scripts from a CDN, and the document alone is what clients need.

Errors name no internal host, endpoint or table: a failed read is logged here in full and
answered with a fixed sentence (502); a query asked wrongly is answered with what to fix (400).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Final

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import COOKIE, Credentials, Tokens
from api.guards import BodyLimit, RateLimit, SecurityHeaders, is_https, security_headers
from api.limits import ApiLimits, RateLimiter
from api.page import LOGIN_FORM, PAGE_SCRIPT, STYLE, live_sections, operator_page
from api.page_ops import OperationsReader
from api.routes import router
from api.sessions import Sessions, derive_key
from core.errors import ConfigError, LuxflowError
from lighting.read.cursors import Cursors
from lighting.read.model import ReadModel
from lighting.read.rows import QueryError

log = logging.getLogger(__name__)
CURSOR_KEY_PURPOSE: Final = b"luxflow cursor v1"


def api_cursors(tokens: Sequence[str]) -> Cursors:
    """Cursor keys every server of a deployment derives alike from its tokens (current
    first), so a page's cursor works on any of them and through a token rotation."""
    return Cursors([derive_key(token, CURSOR_KEY_PURPOSE) for token in tokens])


def _login_token(body: bytes) -> str:
    """The form's `token`, or "" (a guess that matches nothing) for any other body."""
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:  # more fields than a login form has: parse_qs refuses to go on
        return ""
    return (form.get("token") or [""])[0]


def _cookie_options(request: Request, always_secure: bool) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": always_secure or is_https(request.scope),
        "path": "/",
    }


def _wants_html(request: Request) -> bool:
    """A browser navigating (it accepts HTML), not a JSON client."""
    return "text/html" in request.headers.get("accept", "")


def create_app(
    model: ReadModel,
    tokens: Sequence[str],
    now_ms: Callable[[], int],
    *,
    limits: ApiLimits | None = None,
    secure_cookies: bool = False,
    operations: OperationsReader | None = None,
) -> SecurityHeaders:
    """The API (`/api/v1/...`), the operator page (`/`), its login and logout, wrapped in the
    security headers, the rate limit and the body limit. `tokens`: current first.
    `secure_cookies`: mark the session cookie Secure on every response (else only on https,
    directly or per X-Forwarded-Proto). `operations`: what the page shows about the pipeline
    (shards, dead letters); None: the page says it has no access."""
    limits = limits or ApiLimits()
    sessions = Sessions(tokens, limits.session_ttl_ms, now_ms, limits.max_revoked_sessions)
    auth = Tokens(tokens, sessions, limits.failure_delay_s)
    app = FastAPI(
        title="luxflow read API",
        version="1",
        description="Read-only access to the command model (DynamoDB) and the query model "
        "(InfluxQL). Every route needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router(model, now_ms, auth.api()))

    @app.exception_handler(QueryError)
    def bad_query(_request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ConfigError)
    def not_configured(_request: Request, exc: ConfigError) -> JSONResponse:
        log.warning("read API: %s", exc)
        return JSONResponse(
            {"detail": "this deployment does not serve that query"}, status_code=501
        )

    @app.exception_handler(LuxflowError)
    def store_failed(request: Request, exc: LuxflowError) -> JSONResponse:
        log.warning("read API: %s failed: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": "the data store could not be read; try again later"}, status_code=502
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def login_form() -> str:
        return LOGIN_FORM

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        # The body is at most `max_body_bytes`: BodyLimit answers 413 before or while reading.
        if not auth.matches(_login_token(await request.body())):
            await auth.refuse(request)
            return HTMLResponse(LOGIN_FORM, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(),
            max_age=limits.session_ttl_ms // 1000,
            **_cookie_options(request, secure_cookies),  # type: ignore[arg-type]
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            COOKIE,
            **_cookie_options(request, secure_cookies),  # type: ignore[arg-type]
        )
        return response

    page_auth = auth.page()

    async def page_or_login(request: Request, credentials: Credentials) -> None:
        # A browser without a (valid) session is sent to the login form; a JSON client keeps
        # its 401 with the WWW-Authenticate header.
        try:
            await page_auth(request, credentials)
        except HTTPException as exc:
            if exc.status_code == 401 and _wants_html(request):
                raise HTTPException(303, "log in first", headers={"Location": "/login"}) from exc
            raise

    @app.get(
        "/",
        include_in_schema=False,
        response_class=HTMLResponse,
        dependencies=[Depends(page_or_login)],
    )
    def page() -> str:
        return operator_page(model, now_ms(), operations)

    @app.get("/page/live", include_in_schema=False, dependencies=[Depends(page_auth)])
    def page_live() -> dict[str, object]:
        return live_sections(model, now_ms(), operations)

    @app.get("/page.js", include_in_schema=False)
    def page_script() -> Response:
        return Response(PAGE_SCRIPT, media_type="text/javascript")

    limiter = RateLimiter(limits)
    guarded = BodyLimit(app, limits)
    guarded = RateLimit(guarded, limiter)  # type: ignore[assignment]
    return SecurityHeaders(guarded, security_headers(STYLE))
