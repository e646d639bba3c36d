"""``GET /v1/health`` and ``GET /health``: alive, with version; public."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rbee_hive_http_server._context import context_of
from rbee_hive_http_server._wire import Health, to_json


async def health(request: Request) -> Response:
    """The queen's liveness probe; it reads nothing that could block."""
    ctx = context_of(request)
    if ctx.health_body is None:  # the same bytes for the daemon's whole life
        ctx.health_body = json.dumps(to_json(Health(version=ctx.version))).encode()
    return Response(ctx.health_body, media_type="application/json")


ROUTES = [
    Route("/v1/health", health, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]
