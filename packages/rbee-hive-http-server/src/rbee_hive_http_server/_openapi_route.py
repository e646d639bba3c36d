"""``GET /openapi.json``: the document ``build_openapi`` generates, with this hive's version."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rbee_hive_http_server._context import context_of
from rbee_hive_http_server._openapi import build_openapi


async def openapi(request: Request) -> JSONResponse:
    """Serve the document."""
    return JSONResponse(build_openapi(context_of(request).version))


ROUTES = [Route("/openapi.json", openapi, methods=["GET"])]
