"""``GET /v1/health`` and ``GET /health``: alive, with version; public."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rbee_hive_http_server._context import context_of


async def health(request: Request) -> JSONResponse:
    """The queen's liveness probe; it reads nothing that could block."""
    return JSONResponse(
        {"status": "alive", "version": context_of(request).version, "api_version": "v1"}
    )


ROUTES = [
    Route("/v1/health", health, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]
