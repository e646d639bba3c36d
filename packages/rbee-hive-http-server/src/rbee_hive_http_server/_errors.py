"""Starlette exception handlers: every failure leaves the app as the error envelope.

Domain errors carry a stable ``code`` and no HTTP knowledge; the status comes from
``ERROR_STATUS``. Routes let domain errors propagate; these handlers translate them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import attrs
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rbee_hive_http_server._wire import (
    ERROR_STATUS,
    ErrorBody,
    ErrorDetail,
    code_for_status,
    to_json,
)
from rbee_hive_http_server.exceptions import ApiError
from rbee_hive_monitor import LaunchFailed, ModelInUse, MonitorError
from rbee_hive_provisioner import AmbiguousModel, ProvisionerError
from rbee_hive_resources import AdmissionRefused

log = logging.getLogger("rbee_hive.http")

_FIGURES = ("required_bytes", "available_bytes", "reserve_bytes", "basis")


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """``{"error": {"code": ..., "message": ..., **details}}`` with ``status``."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details or {}))
    return JSONResponse(to_json(body), status_code=status, headers=headers)


def _details(err: Exception) -> dict[str, Any]:
    if isinstance(err, LaunchFailed):
        return {"exit_code": err.exit_code}
    if isinstance(err, ModelInUse):
        return {"workers": list(err.workers)}
    if isinstance(err, AmbiguousModel):
        return {"choices": list(err.choices)}
    if isinstance(err, AdmissionRefused):
        figures: dict[str, Any] = {
            key: getattr(err, key) for key in _FIGURES if getattr(err, key) is not None
        }
        if err.devices:
            figures["devices"] = [
                {k: getattr(v, "value", v) for k, v in attrs.asdict(d, recurse=False).items()}
                for d in err.devices
            ]
        return figures
    return {}


def api_error_of(err: Exception) -> ApiError:
    """The answer for a domain error: its own ``code`` and message, with the extra figures
    some errors carry (an admission refusal's bytes, a launch's exit code)."""
    if isinstance(err, ApiError):
        return err
    code = str(getattr(err, "code", "INTERNAL_ERROR"))
    if code not in ERROR_STATUS:
        log.error("error code %s has no entry in ERROR_STATUS; answering 500", code)
    return ApiError(code, str(err), details=_details(err))


async def _api_error(request: Request, exc: Exception) -> Response:
    api = api_error_of(exc)
    return error_response(
        api.status, api.code, api.message, details=api.details, headers=api.headers
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = code_for_status(exc.status_code)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path!a}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path!a}"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, ascii(request.url.path))
    return error_response(
        500,
        "INTERNAL_ERROR",
        "the hive failed to handle this request; its log has the traceback",
    )


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]

EXCEPTION_HANDLERS: Mapping[Any, Handler] = {
    ApiError: _api_error,
    MonitorError: _api_error,
    ProvisionerError: _api_error,
    AdmissionRefused: _api_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
"""Handlers for ``Starlette(exception_handlers=...)``: the one place errors become answers."""
