from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from rbee_hive_http_middleware import (
    BodyLimitMiddleware,
    Message,
    RequestBodyTooLarge,
    Scope,
    error_body,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, InnerApp

pytestmark = pytest.mark.anyio
LIMIT = 1024


async def test_declared_length_over_the_cap_is_413_before_the_app_runs(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BodyLimitMiddleware(inner, max_bytes=LIMIT)
    reply = await asgi(
        app,
        method="POST",
        headers=[("content-length", str(LIMIT + 1))],
        chunks=[b"x" * (LIMIT + 1)],
    )
    assert reply.status == 413
    assert reply.error_code == "PAYLOAD_TOO_LARGE"
    assert str(LIMIT) in reply.json()["error"]["message"]
    assert inner.scopes == []


async def test_body_at_the_cap_passes_whole(asgi: AsgiCall, inner: InnerApp) -> None:
    app = BodyLimitMiddleware(inner, max_bytes=LIMIT)
    body = b"y" * LIMIT
    reply = await asgi(
        app,
        method="POST",
        headers=[("content-length", str(LIMIT))],
        chunks=[body[:100], body[100:]],
    )
    assert reply.status == 200
    assert inner.bodies == [body]


async def test_streamed_body_over_the_cap_is_413_and_never_reaches_the_app_whole(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BodyLimitMiddleware(inner, max_bytes=LIMIT)
    chunks = [b"z" * 300] * 10  # chunked transfer: no Content-Length at all
    reply = await asgi(app, method="POST", chunks=chunks)
    assert reply.status == 413
    assert reply.error_code == "PAYLOAD_TOO_LARGE"
    assert inner.bodies == []  # the app's read failed at the chunk that crossed the cap


async def test_body_longer_than_its_content_length_is_cut_off(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BodyLimitMiddleware(inner, max_bytes=LIMIT)
    reply = await asgi(
        app, method="POST", headers=[("content-length", "10")], chunks=[b"a" * 600, b"b" * 600]
    )
    assert reply.status == 413


async def test_chunks_are_counted_as_they_arrive_not_buffered(asgi: AsgiCall) -> None:
    seen: list[int] = []

    async def streaming_app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = BodyLimitMiddleware(streaming_app, max_bytes=LIMIT)
    reply = await asgi(app, method="POST", chunks=[b"q" * 400] * 5)
    assert reply.status == 413
    assert seen == [400, 400]  # the third chunk (crossing 1024) was never handed over


async def test_app_that_swallows_the_error_still_answers_413(asgi: AsgiCall) -> None:
    async def careless_app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:  # a framework turning every error into its own response
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad request"})
            return

    app = BodyLimitMiddleware(careless_app, max_bytes=LIMIT)
    reply = await asgi(app, method="POST", chunks=[b"w" * 700] * 3)
    assert reply.status == 413
    assert b"bad request" not in reply.body


async def test_app_that_responded_before_reading_too_much_is_aborted(asgi: AsgiCall) -> None:
    async def early_responder(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            pass

    app = BodyLimitMiddleware(early_responder, max_bytes=LIMIT)
    with pytest.raises(RequestBodyTooLarge):
        await asgi(app, method="POST", chunks=[b"e" * 700] * 3)


async def test_default_limit_is_64_kib(asgi: AsgiCall, inner: InnerApp) -> None:
    app = BodyLimitMiddleware(inner)
    assert app.max_bytes == 64 * 1024
    ok = await asgi(app, method="POST", chunks=[b"k" * 65536])
    assert ok.status == 200
    too_big = await asgi(app, method="POST", chunks=[b"k" * 65537])
    assert too_big.status == 413


async def test_websocket_and_lifespan_pass_through(asgi: AsgiCall, inner: InnerApp) -> None:
    app = BodyLimitMiddleware(inner, max_bytes=0)
    reply = await asgi(app, scope_type="websocket")
    assert reply.messages[0]["type"] == "websocket.accept"


def test_error_body_is_the_json_envelope() -> None:
    assert error_body("PAYLOAD_TOO_LARGE", "too big") == (
        b'{"error": {"code": "PAYLOAD_TOO_LARGE", "message": "too big"}}'
    )


def test_negative_limit_is_refused() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        del scope, receive, send

    with pytest.raises(ValueError, match="max_bytes"):
        BodyLimitMiddleware(app, max_bytes=-1)


async def test_a_bodyless_http1_get_reaches_the_app_with_the_servers_own_channels() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.extend([receive, send])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    limited = BodyLimitMiddleware(app, max_bytes=LIMIT)
    get = {"type": "http", "method": "GET", "http_version": "1.1", "headers": []}
    await limited(get, receive, send)
    assert seen == [receive, send]  # nothing wrapped: nothing to count
    seen.clear()
    h2 = {"type": "http", "method": "GET", "http_version": "2", "headers": []}
    await limited(h2, receive, send)
    assert seen[0] is not receive  # HTTP/2 can carry a body without either header: counted


class ClientDisconnect(Exception):
    """What a framework raises when the body ends in ``http.disconnect`` (starlette's name)."""


async def _hang_up_mid_body(app: Any) -> list[Message]:
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"model_ref": "hf:', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/workers/spawn", "headers": []}
    await BodyLimitMiddleware(app, max_bytes=LIMIT)(scope, receive, send)
    return sent


async def test_a_client_that_hangs_up_mid_body_is_one_log_line_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def reads_whole_body(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            if not message.get("more_body"):
                break

    with caplog.at_level("DEBUG", logger="rbee_hive.http"):
        sent = await _hang_up_mid_body(reads_whole_body)
    assert sent == []  # nobody left to answer
    (record,) = caplog.records
    assert record.levelname == "DEBUG"  # routine: clients hang up
    assert "closed the connection" in record.getMessage()
    assert "ClientDisconnect" in record.getMessage()
    assert record.exc_info is None  # no traceback per dropped connection


async def test_an_error_while_the_client_is_still_there_still_propagates() -> None:
    async def broken(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("a real bug")

    incoming = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> Message:
        return incoming[0]

    async def send(message: Message) -> None:
        del message

    scope = {"type": "http", "method": "POST", "path": "/v1/workers/spawn", "headers": []}
    with pytest.raises(RuntimeError, match="a real bug"):
        await BodyLimitMiddleware(broken, max_bytes=LIMIT)(scope, receive, send)
