"""Bearer-token authentication for any ASGI app, with worker-callback secrets and a lockout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

import attrs

from rbee_hive_http_middleware._asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    header_values,
    scope_state,
)
from rbee_hive_http_middleware._audit_record import AuditEvent
from rbee_hive_http_middleware._bearer import (
    MAX_AUTHORIZATION_BYTES,
    CredentialStatus,
    parse_bearer,
)
from rbee_hive_http_middleware._callbacks import CallbackAuthenticator
from rbee_hive_http_middleware._client import TrustedProxies
from rbee_hive_http_middleware._lockout import FailureTracker, LockoutPolicy
from rbee_hive_http_middleware._responses import send_json_error
from rbee_hive_http_middleware._token import WEAK_TOKEN_CHARS, Token, token_fingerprint

_log = logging.getLogger("rbee_hive.auth")

#: Paths that never need a token (exact matches on the ASGI ``path``).
DEFAULT_PUBLIC_PATHS = frozenset({"/v1/health", "/health", "/metrics", "/openapi.json"})
#: ``scope["state"]`` key: the worker id a callback path's secret belongs to.
CALLBACK_WORKER_ID_KEY = "rbee.callback_worker_id"
#: ``scope["state"]`` key: the client address the middleware used (lockout, audit).
CLIENT_ADDRESS_KEY = "rbee.client_address"
#: ``scope["state"]`` key: who was authenticated (``token:<fp6>`` or ``worker:<id>``).
AUTH_IDENTITY_KEY = "rbee.auth_identity"
REALM = 'Bearer realm="rbee-hive"'
_MAX_SHOWN = 256
_WEBSOCKET_POLICY_VIOLATION = 1008


def callback_worker_id(scope: Scope) -> str | None:
    """The worker id the middleware authenticated from this request's callback secret, or None.

    A ready/heartbeat route must check that the body's ``worker_id`` equals this value.
    """
    state = scope.get("state") or {}
    worker = state.get(CALLBACK_WORKER_ID_KEY)
    return worker if isinstance(worker, str) else None


class AuditSink(Protocol):
    """Where authentication events go; ``AuditLog`` is one."""

    def record(
        self,
        event: AuditEvent | str,
        *,
        outcome: str = "success",
        actor: str | None = None,
        client: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> bool:
        """Append one audit record; never raises for I/O errors."""
        ...


@attrs.frozen
class _Request:
    """What logs and audit records may show of a request (callback secrets redacted)."""

    address: str
    method: str
    path: str


@attrs.frozen
class _Rejection:
    status: int
    code: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _www_authenticate(error: str | None) -> tuple[tuple[bytes, bytes], ...]:
    value = REALM if error is None else f'{REALM}, error="{error}"'
    return ((b"www-authenticate", value.encode("ascii")),)


_MISSING = _Rejection(
    401,
    "MISSING_API_KEY",
    "Missing API key: send the header 'Authorization: Bearer <token>'",
    _www_authenticate(None),
)
_MALFORMED = _Rejection(
    401,
    "MISSING_API_KEY",
    "Malformed Authorization header: expected exactly 'Bearer <token>' (the scheme 'Bearer' is "
    "case-sensitive, one space, a token of letters, digits and -._~+/ with optional trailing "
    f"'=', at most {MAX_AUTHORIZATION_BYTES} bytes)",
    _www_authenticate("invalid_request"),
)
_INVALID = _Rejection(401, "INVALID_API_KEY", "Invalid API key", _www_authenticate("invalid_token"))
_BAD_CALLBACK = _Rejection(
    401,
    "INVALID_API_KEY",
    "Invalid or revoked worker callback URL",
    _www_authenticate("invalid_token"),
)


class BearerAuthMiddleware:
    """Require ``Authorization: Bearer <token>`` on every path but the public ones.

    * ``public_paths`` always pass. ``token=None`` lets every request pass (the daemon
      allows that only on loopback) and is logged once, here.
    * Callback paths (as the ``callback_authenticator`` recognises them) are authenticated by
      their secret alone, and the worker id goes to ``scope["state"][CALLBACK_WORKER_ID_KEY]``.
    * Failures answer 401 ``MISSING_API_KEY``/``INVALID_API_KEY``; a client address with too
      many failures gets 429 ``TOO_MANY_AUTH_FAILURES`` with ``Retry-After``.
    * ``lifespan`` passes through; ``websocket`` is checked like ``http`` and closed (1008)
      when refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Token | None,
        public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
        callback_authenticator: CallbackAuthenticator | None = None,
        audit: AuditSink | None = None,
        lockout: LockoutPolicy | None = None,
        trusted_proxies: TrustedProxies | None = None,
        clock: Callable[[], float] = time.monotonic,
        audit_successes: bool = True,
    ) -> None:
        self._app = app
        self._token = token
        self._public = frozenset(public_paths)
        bad = sorted(p for p in self._public if not p.startswith("/"))
        if bad:
            raise ValueError(f"public paths must start with '/': {bad!r}")
        self._callbacks = callback_authenticator
        self._audit = audit
        self._policy = lockout or LockoutPolicy()
        self._tracker = FailureTracker(self._policy, clock)
        self._proxies = trusted_proxies or TrustedProxies()
        self._audit_successes = audit_successes
        if token is None:
            _log.warning(
                "authentication is OFF: no API token is configured, so every route is open "
                "to anyone who can reach this address; configure a token before binding "
                "anything but loopback"
            )
        else:
            _log.info(
                "authentication on: every route except %s requires bearer token %s",
                ", ".join(sorted(self._public)) or "none",
                token.identity,
            )
            if len(token.reveal()) < WEAK_TOKEN_CHARS:
                _log.warning(
                    "API token %s is only %d characters long; anyone who can reach the hive "
                    "may guess it; use a generated token (rbee-hive token create)",
                    token.identity,
                    len(token.reveal()),
                )

    def __repr__(self) -> str:
        token = "off" if self._token is None else self._token.identity
        return f"BearerAuthMiddleware(token={token}, public={sorted(self._public)!r})"

    @property
    def locked_out_clients(self) -> int:
        """How many client addresses are tracked by the lockout (for metrics and tests)."""
        return len(self._tracker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        rejection = self._authenticate(scope)
        if rejection is None:
            await self._app(scope, receive, send)
        elif kind == "http":
            await send_json_error(
                send, rejection.status, rejection.code, rejection.message, rejection.headers
            )
        else:
            await send({"type": "websocket.close", "code": _WEBSOCKET_POLICY_VIOLATION})

    # -- the decision ---------------------------------------------------------------------

    def _authenticate(self, scope: Scope) -> _Rejection | None:
        path: str = scope.get("path", "")
        if path in self._public:
            return None
        state = scope_state(scope)
        state.pop(CALLBACK_WORKER_ID_KEY, None)
        address = self._proxies.client_address(scope)
        state[CLIENT_ADDRESS_KEY] = address
        callbacks = self._callbacks
        if callbacks is not None and not callbacks.is_callback_path(path):
            callbacks = None
        if self._token is None:
            worker = None if callbacks is None else callbacks.worker_for_path(path)
            if worker is not None:
                state[CALLBACK_WORKER_ID_KEY] = worker
            return None
        shown = path if callbacks is None else callbacks.redact_path(path)
        request = _Request(address, str(scope.get("method", "WEBSOCKET")), shown[:_MAX_SHOWN])
        retry_after = self._tracker.retry_after(address)
        if retry_after is not None:
            _log.debug("refused %s %s from locked-out %s", request.method, ascii(shown), address)
            return _Rejection(
                429,
                "TOO_MANY_AUTH_FAILURES",
                "Too many failed authentication attempts from this address; "
                f"try again in {retry_after} seconds",
                ((b"retry-after", str(retry_after).encode("ascii")),),
            )
        if callbacks is not None:
            worker = callbacks.worker_for_path(path)
            if worker is None:
                return self._fail(request, _BAD_CALLBACK, "unknown or revoked callback secret")
            state[CALLBACK_WORKER_ID_KEY] = worker
            self._succeed(state, request, f"worker:{worker}")
            return None
        credential = parse_bearer(header_values(scope, b"authorization"))
        if credential.status is CredentialStatus.MISSING:
            return self._fail(request, _MISSING, credential.reason)
        if credential.status is CredentialStatus.MALFORMED:
            return self._fail(request, _MALFORMED, credential.reason)
        if not self._token.matches(credential.token):
            presented = f"token:{token_fingerprint(credential.token.decode('ascii'))}"
            return self._fail(request, _INVALID, "invalid token", presented=presented)
        self._succeed(state, request, self._token.identity)
        return None

    def _succeed(self, state: MutableMapping[str, Any], request: _Request, who: str) -> None:
        self._tracker.record_success(request.address)
        state[AUTH_IDENTITY_KEY] = who
        _log.debug(
            "authenticated %s for %s %s from %s",
            who,
            request.method,
            ascii(request.path),
            request.address,
        )
        if self._audit is not None and self._audit_successes:
            self._audit.record(
                AuditEvent.AUTH_SUCCESS,
                outcome="success",
                actor=who,
                client=request.address,
                details={"method": request.method, "path": request.path},
            )

    def _fail(
        self, request: _Request, rejection: _Rejection, reason: str, *, presented: str | None = None
    ) -> _Rejection:
        locked = self._tracker.record_failure(request.address)
        _log.warning(
            "auth failed from %s: %s (%s %s%s)",
            request.address,
            reason,
            request.method,
            ascii(request.path),
            "" if presented is None else f", presented {presented}",
        )
        if self._audit is not None:
            self._audit.record(
                AuditEvent.AUTH_FAILURE,
                outcome="denied",
                actor=presented,
                client=request.address,
                details={
                    "method": request.method,
                    "path": request.path,
                    "reason": reason,
                    "status": rejection.status,
                },
            )
        if locked:
            _log.warning(
                "client %s locked out for %.0f s after %d failed authentications within %.0f s",
                request.address,
                self._policy.lockout_seconds,
                self._policy.max_failures,
                self._policy.window_seconds,
            )
            if self._audit is not None:
                self._audit.record(
                    AuditEvent.AUTH_LOCKOUT,
                    outcome="denied",
                    client=request.address,
                    details={
                        "failures": self._policy.max_failures,
                        "window_seconds": self._policy.window_seconds,
                        "lockout_seconds": self._policy.lockout_seconds,
                    },
                )
        return rejection
