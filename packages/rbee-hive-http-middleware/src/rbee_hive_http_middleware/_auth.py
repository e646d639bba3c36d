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
from rbee_hive_http_middleware._client import TrustedNetworks, TrustedProxies
from rbee_hive_http_middleware._lockout import FailureTracker, LockoutPolicy
from rbee_hive_http_middleware._responses import send_json_error
from rbee_hive_http_middleware._sampling import RepeatSampler
from rbee_hive_http_middleware._token import Token, token_fingerprint, token_weakness

_log = logging.getLogger("rbee_hive.auth")

#: Paths that never need a token (exact matches on the ASGI ``path``).
DEFAULT_PUBLIC_PATHS = frozenset({"/v1/health", "/health", "/metrics", "/openapi.json"})
#: ``scope["state"]`` key: the worker id a callback path's secret belongs to.
CALLBACK_WORKER_ID_KEY = "rbee.callback_worker_id"
#: ``scope["state"]`` key: the client address the middleware used (lockout, audit).
CLIENT_ADDRESS_KEY = "rbee.client_address"
#: ``scope["state"]`` key: who was authenticated (``token:<fp6>``, ``worker:<id>`` or
#: ``trusted-network:<cidr>``).
AUTH_IDENTITY_KEY = "rbee.auth_identity"
REALM = 'Bearer realm="rbee-hive"'
_MAX_SHOWN = 256
_WEBSOCKET_POLICY_VIOLATION = 1008
#: Refusals that are not guesses are audited once per client, reason and this many seconds.
REFUSAL_AUDIT_WINDOW_SECONDS = 60.0
#: Addresses admitted by a trusted network that were announced at WARNING (then DEBUG).
_ANNOUNCED_LIMIT = 4096


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


def _missing(trusted: TrustedNetworks) -> _Rejection:
    extra = (
        f" (requests without one are admitted only from the trusted networks {trusted})"
        if trusted
        else ""
    )
    return _Rejection(
        401,
        "MISSING_API_KEY",
        f"Missing API key: send the header 'Authorization: Bearer <token>'{extra}",
        _www_authenticate(None),
    )


def _untrusted(trusted: TrustedNetworks) -> _Rejection:
    return _Rejection(
        401,
        "UNTRUSTED_NETWORK",
        "This hive has no API token and admits requests only from its trusted networks "
        f"({trusted}); your address is not in them. Add your network to the hive's "
        "trusted_networks setting (hive.toml or RBEE_HIVE_TRUSTED_NETWORKS), or configure "
        "an API token on the hive and send it as 'Authorization: Bearer <token>'",
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

    * ``public_paths`` always pass. ``token=None`` without ``trusted_networks`` lets every
      request pass (the daemon allows that only on loopback) and is logged once, here.
    * Callback paths (as the ``callback_authenticator`` recognises them) are authenticated by
      their secret alone, and the worker id goes to ``scope["state"][CALLBACK_WORKER_ID_KEY]``.
      They are never subject to the lockout, and a wrong secret never counts towards it.
    * A request with the right token always passes, even from a locked-out address.
    * Only a wrong token counts as a guess: a client address with too many of them gets 429
      ``TOO_MANY_AUTH_FAILURES`` with ``Retry-After`` for its further wrong tokens. A missing
      or malformed header is refused with 401 but is not a guess (it cannot be right).
    * ``trusted_networks`` admits requests without a token from those networks (the TCP peer
      must be in one; ``X-Forwarded-For`` can never widen this). With ``token=None`` they are
      the only clients admitted.
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
        trusted_networks: TrustedNetworks | None = None,
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
        self._refusals: RepeatSampler[str] = RepeatSampler(REFUSAL_AUDIT_WINDOW_SECONDS, clock)
        self._proxies = trusted_proxies or TrustedProxies()
        self._trusted = trusted_networks or TrustedNetworks()
        self._announced: set[str] = set()
        self._missing = _missing(self._trusted)
        self._untrusted = _untrusted(self._trusted)
        self._audit_successes = audit_successes
        if token is None and not self._trusted:
            _log.warning(
                "authentication is OFF: no API token is configured, so every route is open "
                "to anyone who can reach this address; configure a token before binding "
                "anything but loopback"
            )
        elif token is None:
            _log.warning(
                "no API token: only clients in the trusted networks %s are admitted, without "
                "any credential; everyone else is refused",
                self._trusted,
            )
        else:
            _log.info(
                "authentication on: every route except %s requires bearer token %s",
                ", ".join(sorted(self._public)) or "none",
                token.identity,
            )
            if self._trusted:
                _log.warning(
                    "trusted networks %s may also call every route WITHOUT the token",
                    self._trusted,
                )
            weakness = token_weakness(token)
            if weakness is not None:
                _log.warning(
                    "API token %s %s; anyone who can reach the hive may guess it; use a "
                    "generated token (rbee-hive token create)",
                    token.identity,
                    weakness,
                )

    def __repr__(self) -> str:
        token = "off" if self._token is None else self._token.identity
        return (
            f"BearerAuthMiddleware(token={token}, public={sorted(self._public)!r}, "
            f"trusted_networks={str(self._trusted)!r})"
        )

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
        if self._token is None and not self._trusted:
            worker = None if callbacks is None else callbacks.worker_for_path(path)
            if worker is not None:
                state[CALLBACK_WORKER_ID_KEY] = worker
            return None
        shown = path if callbacks is None else callbacks.redact_path(path)
        request = _Request(address, str(scope.get("method", "WEBSOCKET")), shown[:_MAX_SHOWN])
        if callbacks is not None:
            # A worker's secret URL: 256 random bits nobody can guess, so no lockout applies,
            # and a stale secret (a worker the hive no longer knows) locks nobody out.
            worker = callbacks.worker_for_path(path)
            if worker is None:
                return self._refuse(request, _BAD_CALLBACK, "unknown or revoked callback secret")
            state[CALLBACK_WORKER_ID_KEY] = worker
            self._succeed(state, request, f"worker:{worker}")
            return None
        credential = parse_bearer(header_values(scope, b"authorization"))
        if self._token is not None and credential.status is CredentialStatus.PRESENT:
            if self._token.matches(credential.token):
                self._succeed(state, request, self._token.identity)
                return None
            return self._wrong_token(request, credential.token)
        network = self._trusted_network(scope, address)
        if network is not None:
            self._admit_trusted(state, request, network)
            return None
        if self._token is None:
            return self._refuse(request, self._untrusted, "not in a trusted network")
        if credential.status is CredentialStatus.MISSING:
            return self._refuse(request, self._missing, credential.reason)
        return self._refuse(request, _MALFORMED, credential.reason)

    def _trusted_network(self, scope: Scope, address: str) -> str | None:
        """The trusted network of this request, judged on the TCP peer (and, behind a trusted
        proxy, on the forwarded client too: a header can narrow this, never widen it)."""
        if not self._trusted:
            return None
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        network = self._trusted.network_of(peer)
        if network is None or (address != peer and self._trusted.network_of(address) is None):
            return None
        return str(network)

    def _admit_trusted(
        self, state: MutableMapping[str, Any], request: _Request, network: str
    ) -> None:
        who = f"trusted-network:{network}"
        if request.address not in self._announced and len(self._announced) < _ANNOUNCED_LIMIT:
            self._announced.add(request.address)
            _log.warning(
                "admitting requests WITHOUT a token from %s (trusted network %s)",
                request.address,
                network,
            )
        self._succeed(state, request, who, via=("trusted_network", network))

    def _wrong_token(self, request: _Request, presented_token: bytes) -> _Rejection:
        retry_after = self._tracker.retry_after(request.address)
        if retry_after is not None:
            _log.debug(
                "refused %s %s from locked-out %s",
                request.method,
                ascii(request.path),
                request.address,
            )
            return _Rejection(
                429,
                "TOO_MANY_AUTH_FAILURES",
                f"Too many wrong API tokens from this address; try again in {retry_after} seconds",
                ((b"retry-after", str(retry_after).encode("ascii")),),
            )
        presented = f"token:{token_fingerprint(presented_token.decode('ascii'))}"
        return self._fail(request, _INVALID, "invalid token", presented=presented)

    def _succeed(
        self,
        state: MutableMapping[str, Any],
        request: _Request,
        who: str,
        *,
        via: tuple[str, str] | None = None,
    ) -> None:
        # No reset of the address's wrong tokens: a guesser sharing an address (loopback, a
        # NAT) with good clients or workers must not have its count cleared by them, and the
        # good clients lose nothing, as a valid credential is never refused.
        state[AUTH_IDENTITY_KEY] = who
        _log.debug(
            "authenticated %s for %s %s from %s",
            who,
            request.method,
            ascii(request.path),
            request.address,
        )
        if self._audit is not None and self._audit_successes:
            details: dict[str, object] = {"method": request.method, "path": request.path}
            if via is not None:
                details["via"], details["network"] = via
            self._audit.record(
                AuditEvent.AUTH_SUCCESS,
                outcome="success",
                actor=who,
                client=request.address,
                details=details,
            )

    def _log_failure(self, request: _Request, reason: str, presented: str | None) -> None:
        _log.warning(
            "auth failed from %s: %s (%s %s%s)",
            request.address,
            reason,
            request.method,
            ascii(request.path),
            "" if presented is None else f", presented {presented}",
        )

    def _refuse(self, request: _Request, rejection: _Rejection, reason: str) -> _Rejection:
        """A refusal that is no guess at the token: not counted for the lockout, and audited
        once per client and reason a minute (with how many were not)."""
        self._log_failure(request, reason, None)
        repeated = self._refusals.admit(f"{request.address} {rejection.code} {reason}")
        if self._audit is not None and repeated is not None:
            details: dict[str, object] = {
                "method": request.method,
                "path": request.path,
                "reason": reason,
                "status": rejection.status,
            }
            if repeated:
                details["similar_refusals_not_recorded"] = repeated
            self._audit.record(
                AuditEvent.AUTH_FAILURE,
                outcome="denied",
                client=request.address,
                details=details,
            )
        return rejection

    def _fail(
        self, request: _Request, rejection: _Rejection, reason: str, *, presented: str
    ) -> _Rejection:
        """A wrong token: a guess, counted for the lockout and audited every time."""
        locked = self._tracker.record_failure(request.address)
        self._log_failure(request, reason, presented)
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
                "client %s locked out for %.0f s after %d wrong tokens within %.0f s "
                "(the right token still passes)",
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
