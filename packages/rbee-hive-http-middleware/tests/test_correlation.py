from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from rbee_hive_http_middleware import (
    CORRELATION_ID_KEY,
    CorrelationIdFilter,
    CorrelationIdMiddleware,
    Scope,
    correlation_id,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, InnerApp

pytestmark = pytest.mark.anyio
_log = logging.getLogger("rbee_hive.test_route")


class LoggingApp:
    """An app that logs inside the request and notes the context variable's value."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.seen.append(correlation_id.get())
        _log.info("handling the request")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-correlation-id", b"app-made-this-up")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def test_valid_incoming_id_is_echoed_and_visible_to_the_app(asgi: AsgiCall) -> None:
    inner = LoggingApp()
    app = CorrelationIdMiddleware(inner)
    reply = await asgi(app, headers=[("X-Correlation-ID", "req-42.a_b")])
    assert reply.header("x-correlation-id") == "req-42.a_b"
    assert [v for k, v in reply.headers if k == b"x-correlation-id"] == [b"req-42.a_b"]
    assert inner.seen == ["req-42.a_b"]
    assert correlation_id.get() is None  # reset after the request


async def test_missing_id_is_generated_as_uuid4(asgi: AsgiCall, inner: InnerApp) -> None:
    app = CorrelationIdMiddleware(inner)
    first = (await asgi(app)).header("x-correlation-id")
    second = (await asgi(app)).header("x-correlation-id")
    assert first is not None
    assert second is not None
    assert first != second
    assert uuid.UUID(first).version == 4
    assert inner.scopes[-1]["state"][CORRELATION_ID_KEY] == second


@pytest.mark.parametrize(
    "bad",
    [
        "x" * 65,
        "has space",
        "semi;colon",
        "new\nline",
        "ünicode",
        "",
        "../../etc",
    ],
)
async def test_invalid_id_is_replaced_not_echoed(asgi: AsgiCall, inner: InnerApp, bad: str) -> None:
    app = CorrelationIdMiddleware(inner)
    reply = await asgi(app, headers=[(b"x-correlation-id", bad.encode("utf-8"))])
    echoed = reply.header("x-correlation-id")
    assert echoed is not None
    assert echoed != bad
    assert uuid.UUID(echoed).version == 4


async def test_id_of_64_characters_is_kept(asgi: AsgiCall, inner: InnerApp) -> None:
    app = CorrelationIdMiddleware(inner)
    longest = "A" * 64
    assert (await asgi(app, headers=[("x-correlation-id", longest)])).header(
        "x-correlation-id"
    ) == longest


async def test_two_id_headers_are_replaced(asgi: AsgiCall, inner: InnerApp) -> None:
    app = CorrelationIdMiddleware(inner)
    reply = await asgi(app, headers=[("x-correlation-id", "a"), ("x-correlation-id", "b")])
    assert reply.header("x-correlation-id") not in ("a", "b")


async def test_log_records_of_the_request_carry_the_id(
    asgi: AsgiCall, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(CorrelationIdFilter())
    app = CorrelationIdMiddleware(LoggingApp())
    with caplog.at_level(logging.INFO, logger="rbee_hive.test_route"):
        await asgi(app, headers=[("x-correlation-id", "trace-me")])
        _log.info("outside any request")
    inside, outside = (r for r in caplog.records if r.name == "rbee_hive.test_route")
    assert inside.correlation_id == "trace-me"  # type: ignore[attr-defined]  # set by the filter
    assert outside.correlation_id == "-"  # type: ignore[attr-defined]  # set by the filter


async def test_websocket_accept_carries_the_id_and_lifespan_passes(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = CorrelationIdMiddleware(inner)
    reply = await asgi(app, scope_type="websocket", headers=[("x-correlation-id", "ws-1")])
    assert reply.messages[0]["headers"] == [(b"x-correlation-id", b"ws-1")]
