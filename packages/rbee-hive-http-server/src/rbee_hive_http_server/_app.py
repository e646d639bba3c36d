"""The Starlette app factory: routes, error envelope, and the ASGI middleware stack."""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match

from rbee_hive_http_middleware import (
    ASGIApp,
    AuditSink,
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    CallbackSecrets,
    CorrelationIdMiddleware,
    LockoutPolicy,
    Message,
    Receive,
    Scope,
    Send,
    Token,
    TrustedNetworks,
)
from rbee_hive_http_server import (
    _devices,
    _health,
    _metrics_route,
    _models,
    _openapi_route,
    _workers,
)
from rbee_hive_http_server._context import HiveContext, MetricsView
from rbee_hive_http_server._errors import EXCEPTION_HANDLERS

ROUTES: list[BaseRoute] = [
    # The router tries routes in order: the ones pollers hit all day come first.
    *[r for r in _workers.ROUTES if getattr(r, "path", "") == "/v1/workers/list"],
    *_health.ROUTES,
    *_metrics_route.ROUTES,
    *[r for r in _workers.ROUTES if getattr(r, "path", "") != "/v1/workers/list"],
    *_openapi_route.ROUTES,
    *_models.ROUTES,
    *_devices.ROUTES,
]
PUBLIC_PATHS = ("/v1/health", "/health", "/metrics", "/openapi.json")
MAX_BODY_BYTES = 64 * 1024


class RequestMetricsMiddleware:
    """Counts every answered request by route template (never the raw path, so a scanner
    cannot blow up label cardinality) and status, with its latency."""

    _CACHE_LIMIT = 4096

    def __init__(self, app: ASGIApp, metrics: MetricsView, routes: Sequence[BaseRoute]) -> None:
        self._app = app
        self._metrics = metrics
        self._routes = routes
        self._templates: dict[tuple[str, str], str] = {}

    def _template(self, scope: Scope) -> str:
        key = (scope["method"], scope["path"])
        template = self._templates.get(key)
        if template is not None:
            return template
        template = "unmatched"
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                template = str(getattr(route, "path", "other"))
                break
        if len(self._templates) < self._CACHE_LIMIT:  # ids in paths must not grow it forever
            self._templates[key] = template
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            self._metrics.observe_request(
                self._template(scope), scope["method"], status, time.perf_counter() - start
            )


def create_app(
    context: HiveContext,
    *,
    token: Token | None,
    callbacks: CallbackSecrets,
    audit: AuditSink | None = None,
    lockout: LockoutPolicy | None = None,
    trusted_networks: TrustedNetworks | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> ASGIApp:
    """The hive's ASGI app. Outermost first: correlation id, request metrics, bearer auth
    (with the per-worker callback secrets), body cap, then the routes."""
    app = Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS)
    app.state.hive = context
    stack: ASGIApp = BodyLimitMiddleware(app, max_bytes=max_body_bytes)
    stack = BearerAuthMiddleware(
        stack,
        token=token,
        public_paths=PUBLIC_PATHS,
        callback_authenticator=callbacks,
        audit=audit,
        lockout=lockout,
        trusted_networks=trusted_networks,
    )
    if context.metrics is not None:
        stack = RequestMetricsMiddleware(stack, context.metrics, ROUTES)
    return CorrelationIdMiddleware(stack)
