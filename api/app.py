"""The read API's application: FastAPI on uvicorn.

FastAPI because it derives the OpenAPI document (at `/openapi.json`) from the typed routes
and response models, validates query parameters, and is maintained and widely used; it runs
on Starlette, served by uvicorn. The routes are plain `def`s: the read model uses blocking
boto3 and urllib calls, which FastAPI runs in its thread pool. Swagger UI and ReDoc are off:
they load scripts from a CDN, and the document alone is what clients need.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import COOKIE, Tokens
from api.page import LOGIN_FORM, render_page
from api.routes import router
from core.clock import DAY_MS, HOUR_MS
from core.errors import ConfigError, LuxflowError
from lighting.read.model import ReadModel
from lighting.read.rows import FaultRow, QueryError

PAGE_SPIKES = 20


def create_app(model: ReadModel, token: str, now_ms: Callable[[], int]) -> FastAPI:
    """The API (`/api/v1/...`), the operator page (`/`) and its login (`/login`)."""
    tokens = Tokens(token)
    app = FastAPI(
        title="luxflow read API",
        version="1",
        description="Read-only access to the command model (DynamoDB) and the query model "
        "(InfluxQL). Every route needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router(model, now_ms, tokens.api()))

    @app.exception_handler(QueryError)
    def bad_query(_request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ConfigError)
    def not_configured(_request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=501)

    @app.exception_handler(LuxflowError)
    def store_failed(_request: Request, exc: LuxflowError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def login_form() -> str:
        return LOGIN_FORM

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        candidate = (form.get("token") or [""])[0]
        if not tokens.matches(candidate):
            return HTMLResponse(LOGIN_FORM, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            candidate,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get(
        "/",
        include_in_schema=False,
        response_class=HTMLResponse,
        dependencies=[Depends(tokens.page())],
    )
    def page() -> str:
        now = now_ms()
        buildings = model.command.buildings()
        faults: dict[tuple[str, str], list[FaultRow]] = {}
        for building in buildings:
            if building.open_faults:
                key = (building.site_id, building.building_id)
                faults[key] = model.command.open_faults(*key, limit=1000).items
        energy = None
        if model.energy_reader is not None:
            start = now - now % HOUR_MS + HOUR_MS - DAY_MS
            energy = model.energy_reader.energy(
                "site", "1h", start, start + DAY_MS, limit=10_000
            ).items
        spikes = sorted(
            (
                spike
                for site_id in sorted({b.site_id for b in buildings})
                for spike in model.command.spikes(site_id, now - DAY_MS, limit=PAGE_SPIKES).items
            ),
            key=lambda s: s.started_at_ms,
            reverse=True,
        )[:PAGE_SPIKES]
        return render_page(now, buildings, faults, energy, spikes)

    return app
