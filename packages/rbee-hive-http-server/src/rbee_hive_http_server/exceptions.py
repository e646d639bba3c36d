"""Errors of the HTTP layer: every one becomes ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by a route to answer with ``status`` and the error envelope.

    ``code`` is a stable UPPER_SNAKE identifier clients may branch on; ``message`` is for a
    person and never contains raw, unescaped input; ``details`` (optional) are extra JSON fields
    placed next to code and message (figures of an admission refusal, the choices of an
    ambiguous model reference).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class HiveClientError(Exception):
    """Raised by ``HiveClient`` when the daemon answered with an error or could not be reached.

    ``status`` is None when no HTTP answer came (connection refused, timeout); ``address`` is
    the daemon address that was tried, so the message can tell a person where it looked.
    """

    def __init__(
        self, message: str, *, address: str, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.address = address
        self.status = status
        self.code = code
