"""``GET /metrics``: the Prometheus exposition, public like the original's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rbee_hive_http_server._context import context_of
from rbee_hive_http_server.exceptions import ApiError


async def metrics(request: Request) -> Response:
    """Text format by default, OpenMetrics when ``Accept`` asks for it."""
    view = context_of(request).metrics
    if view is None:
        raise ApiError("METRICS_UNAVAILABLE", "metrics are not wired in this hive")
    body, content_type = view.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
