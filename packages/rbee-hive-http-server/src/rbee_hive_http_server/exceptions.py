"""Errors of the HTTP layer and of its client; every server error becomes
``{"error": {"code", "message", ...}}`` with the status ``ERROR_STATUS`` gives its code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rbee_hive_http_server._wire import status_for


class ApiError(Exception):
    """Raised by a route to answer with the error envelope; the status comes from the code.

    ``code`` is a stable UPPER_SNAKE identifier clients may branch on (``ERROR_STATUS`` maps
    it to the HTTP status); ``message`` is for a person and never contains raw, unescaped
    input; ``details`` (optional) are extra JSON fields placed next to code and message (the
    fields a 422 names, the figures of an admission refusal).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details or {}
        self.headers: Mapping[str, str] = headers or {}

    @property
    def status(self) -> int:
        """The HTTP status of ``code``."""
        return status_for(self.code)


class HiveClientError(Exception):
    """Raised by ``HiveClient`` when the daemon answered with an error, answered something
    it cannot read, or could not be reached.

    ``status`` and ``code`` are None when no HTTP answer came (connection refused, timeout);
    ``details`` are the extra keys of the error envelope; ``address`` is the daemon address
    that was tried, so the message can tell a person where it looked.
    """

    def __init__(
        self,
        message: str,
        *,
        address: str,
        status: int | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.address = address
        self.status = status
        self.code = code
        self.details: Mapping[str, Any] = details or {}
