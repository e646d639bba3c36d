"""Correlation ids: one per request, echoed in the response and attached to every log record."""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from rbee_hive_http_middleware._asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    header_values,
    scope_state,
)

_log = logging.getLogger("rbee_hive.http")

#: The id of the request being handled in this context (None outside a request).
correlation_id: ContextVar[str | None] = ContextVar("rbee_hive_correlation_id", default=None)
#: ``scope["state"]`` key holding the request's correlation id.
CORRELATION_ID_KEY = "rbee.correlation_id"
CORRELATION_ID_HEADER = "X-Correlation-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


_PROCESS_PREFIX = uuid.uuid4().hex[:20]
_sequence = itertools.count(1)


def _new_id() -> str:
    # UUID-shaped, unique per process (a random prefix and a counter): a correlation id only
    # has to be unique, and a uuid4 per request costs a getrandom() call on the hot path.
    p = _PROCESS_PREFIX
    return f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{next(_sequence) & 0xFFFFFFFFFFFF:012x}"


def valid_correlation_id(value: str) -> bool:
    """True for 1 to 64 characters of ``[A-Za-z0-9._-]``: safe to echo and to log."""
    return _VALID.fullmatch(value) is not None


class CorrelationIdMiddleware:
    """Take a valid ``X-Correlation-ID`` from the request or make a uuid4, and echo it.

    The id is set in the ``correlation_id`` context variable for the whole request, stored in
    ``scope["state"][CORRELATION_ID_KEY]`` and added to the response (``http.response.start``
    or ``websocket.accept``) headers. An invalid incoming id is replaced, not echoed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = CORRELATION_ID_HEADER,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._app = app
        self._header = header.lower().encode("ascii")
        self._new_id = new_id

    def __repr__(self) -> str:
        return f"CorrelationIdMiddleware(header={self._header.decode()!r})"

    def _incoming(self, scope: Scope) -> str | None:
        values = header_values(scope, self._header)
        if len(values) != 1:
            if values:
                _log.debug("ignored %d %s headers; generated a new id", len(values), self._header)
            return None
        text = values[0].decode("latin-1")
        if valid_correlation_id(text):
            return text
        _log.debug(
            "ignored an invalid %s header (%d bytes; 1-64 of [A-Za-z0-9._-] expected)",
            self._header.decode(),
            len(values[0]),
        )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        cid = self._incoming(scope) or self._new_id()
        scope_state(scope)[CORRELATION_ID_KEY] = cid
        header = (self._header, cid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != self._header
                ]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        reset = correlation_id.set(cid)
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(reset)


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to every record (``"-"`` outside a request).

    Attach it to handlers (``handler.addFilter(CorrelationIdFilter())``) so records of every
    logger get it, and use ``%(correlation_id)s`` in the format.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id.get() or "-"
        return True
