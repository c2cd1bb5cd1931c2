"""`luxflow serve`: the read API and the operator page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse

from cli.base import SubParsers, info
from core.clock import wall_clock_ms
from core.errors import ConfigError
from lighting.clients import Clients
from lighting.influx import secret_value
from lighting.read.model import read_model
from lighting.settings import Settings


def register(sub: SubParsers) -> None:
    serve = sub.add_parser(
        "serve", help="serve the read API (/api/v1, /openapi.json) and the operator page (/)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.set_defaults(run=cmd_serve)


def api_token(settings: Settings, clients: Clients) -> str:
    if settings.api_token:
        return settings.api_token
    if settings.api_token_secret:
        return secret_value(clients.secretsmanager, settings.api_token_secret)
    raise ConfigError("luxflow serve needs LUXFLOW_API_TOKEN or LUXFLOW_API_TOKEN_SECRET")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    clients = Clients(settings)
    app = create_app(read_model(settings, clients), api_token(settings, clients), wall_clock_ms)
    info(f"read API on http://{args.host}:{args.port}/api/v1 (OpenAPI at /openapi.json)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
