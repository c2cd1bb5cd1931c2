"""`luxflow serve`: the read API and the operator page (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse

from cli.base import SubParsers, info
from core.clock import wall_clock_ms
from lighting.clients import Clients
from lighting.read.model import read_model
from lighting.secrets import api_tokens
from lighting.settings import Settings


def register(sub: SubParsers) -> None:
    serve = sub.add_parser(
        "serve", help="serve the read API (/api/v1, /openapi.json) and the operator page (/)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import api_cursors, create_app
    from api.page_ops import operations_reader

    clients = Clients(settings)
    # Tokens first: a null, short or malformed one stops the start with one line.
    tokens = api_tokens(settings.api_token, settings.api_token_secret, clients.secretsmanager)
    app = create_app(
        read_model(settings, clients, api_cursors(tokens)),
        tokens,
        wall_clock_ms,
        secure_cookies=settings.api_secure_cookies,
        operations=operations_reader(settings, clients),
    )
    info(f"operator page on http://{args.host}:{args.port}/ (log in with LUXFLOW_API_TOKEN)")
    info(f"read API on http://{args.host}:{args.port}/api/v1 (OpenAPI at /openapi.json)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
