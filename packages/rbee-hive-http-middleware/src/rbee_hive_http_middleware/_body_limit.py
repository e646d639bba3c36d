"""Cap the size of request bodies, declared (Content-Length) or streamed (chunked)."""

from __future__ import annotations

import logging

from rbee_hive_http_middleware._asgi import ASGIApp, Message, Receive, Scope, Send, header_values
from rbee_hive_http_middleware._responses import send_json_error
from rbee_hive_http_middleware.exceptions import RequestBodyTooLarge

_log = logging.getLogger("rbee_hive.http")
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _declared_length(scope: Scope) -> int | None:
    values = header_values(scope, b"content-length")
    lengths = {value.strip() for value in values}
    if len(lengths) != 1:
        return None  # absent or contradictory: the server rejects the latter; count bytes
    (text,) = lengths
    return int(text) if text.isdigit() and len(text) <= 19 else None


class BodyLimitMiddleware:
    """Answer 413 ``PAYLOAD_TOO_LARGE`` to bodies over ``max_bytes``, without buffering them.

    A ``Content-Length`` over the cap is refused before the app runs. A streamed body is
    counted as it arrives; the chunk that crosses the cap is never handed to the app, whose
    ``receive`` raises ``RequestBodyTooLarge`` instead, and whatever response the app then
    tries to send is replaced by the 413.

    When the client disconnects before its body is complete, whatever the app raises about
    the missing body is logged as one line rather than left to the server as a crash.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._app = app
        self._max = max_bytes

    def __repr__(self) -> str:
        return f"BodyLimitMiddleware(max_bytes={self._max})"

    @property
    def max_bytes(self) -> int:
        """The largest body accepted, in bytes."""
        return self._max

    async def _refuse(self, scope: Scope, send: Send) -> None:
        _log.info(
            "refused %s %s: body larger than %d bytes",
            scope.get("method", "?"),
            ascii(str(scope.get("path", ""))[:256]),
            self._max,
        )
        await send_json_error(
            send,
            413,
            "PAYLOAD_TOO_LARGE",
            f"Request body is larger than {self._max} bytes, the limit for one request",
            ((b"connection", b"close"),),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self._max:
            await self._refuse(scope, send)
            return
        if (
            declared is None
            and scope.get("http_version") in ("1.0", "1.1")
            and scope.get("method") in ("GET", "HEAD")
            and not header_values(scope, b"transfer-encoding")
        ):
            # An HTTP/1.x request without Content-Length or Transfer-Encoding has no body
            # (RFC 9112 6.3), so a GET goes through untouched. HTTP/2 carries bodies without
            # either header, so it is always counted.
            await self._app(scope, receive, send)
            return
        received = 0
        exceeded = False
        app_started = False
        refused = False
        disconnected = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded, disconnected
            if exceeded:
                raise RequestBodyTooLarge(self._max)
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            elif message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    exceeded = True
                    raise RequestBodyTooLarge(self._max)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal app_started, refused
            if exceeded:
                if not app_started and not refused:
                    refused = True
                    await self._refuse(scope, send)
                return  # the app's own answer to the oversized body is replaced by the 413
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self._app(scope, counting_receive, guarded_send)
        except RequestBodyTooLarge:
            if app_started:
                raise  # a response is already on the wire: let the server abort it
        except Exception as err:
            if not disconnected:
                raise
            # The client hung up before sending its whole body; the app's complaint about
            # that (starlette's ClientDisconnect, say) has nobody to go to and is no server
            # error: one debug line, not a traceback per dropped connection.
            _log.debug(
                "client closed the connection before its %s %s was answered (%s)",
                scope.get("method", "?"),
                ascii(str(scope.get("path", ""))[:256]),
                type(err).__name__,
            )
            return
        if exceeded and not app_started and not refused:
            await self._refuse(scope, send)
