from __future__ import annotations

import errno
import hmac
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_http_middleware import (
    AUTH_IDENTITY_KEY,
    CLIENT_ADDRESS_KEY,
    DEFAULT_PUBLIC_PATHS,
    AuditFile,
    AuditLog,
    BearerAuthMiddleware,
    CredentialStatus,
    Token,
    TrustedProxies,
    parse_bearer,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, InnerApp

pytestmark = pytest.mark.anyio
Headers = list[tuple[str | bytes, str | bytes]]


@pytest.mark.parametrize("path", sorted(DEFAULT_PUBLIC_PATHS))
async def test_public_paths_pass_without_a_token(
    asgi: AsgiCall, inner: InnerApp, token: Token, path: str
) -> None:
    app = BearerAuthMiddleware(inner, token=token)
    reply = await asgi(app, path=path)
    assert reply.status == 200


async def test_public_path_match_is_exact(asgi: AsgiCall, inner: InnerApp, token: Token) -> None:
    app = BearerAuthMiddleware(inner, token=token)
    for path in ("/v1/health/", "/v1/healthz", "//v1/health", "/metrics/x"):
        assert (await asgi(app, path=path)).status == 401, path


async def test_missing_header_is_401_missing_api_key(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    reply = await asgi(BearerAuthMiddleware(inner, token=token))
    assert reply.status == 401
    assert reply.error_code == "MISSING_API_KEY"
    assert reply.header("content-type") == "application/json"
    assert reply.header("www-authenticate") == 'Bearer realm="rbee-hive"'
    assert inner.scopes == []


async def test_wrong_token_is_401_invalid_api_key(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    app = BearerAuthMiddleware(inner, token=token)
    reply = await asgi(app, headers=[("authorization", "Bearer not-the-token")])
    assert reply.status == 401
    assert reply.error_code == "INVALID_API_KEY"
    assert reply.header("www-authenticate") == 'Bearer realm="rbee-hive", error="invalid_token"'
    assert inner.scopes == []


async def test_right_token_reaches_the_app_with_identity_in_state(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    reply = await asgi(BearerAuthMiddleware(inner, token=token), headers=auth_headers)
    assert reply.status == 200
    assert inner.last_state[AUTH_IDENTITY_KEY] == token.identity
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "127.0.0.1"


@pytest.mark.parametrize(
    "value",
    [
        "bearer {t}",
        "BEARER {t}",
        "Bearer  {t}",
        "Bearer\t{t}",
        " Bearer {t}",
        "Bearer {t} ",
        "Bearer {t}\t",
        "Bearer {t} extra",
        "Bearer",
        "Bearer ",
        "Basic {t}",
        "{t}",
        "Bearer {t}\x00",
        "Bearer =abc",
    ],
)
async def test_scheme_is_case_sensitive_and_spacing_strict(
    asgi: AsgiCall, inner: InnerApp, token: Token, value: str
) -> None:
    header = value.format(t=token.reveal())
    reply = await asgi(
        BearerAuthMiddleware(inner, token=token), headers=[("authorization", header)]
    )
    assert reply.status == 401
    assert reply.error_code == "MISSING_API_KEY"
    assert 'error="invalid_request"' in (reply.header("www-authenticate") or "")
    assert inner.scopes == []


async def test_authorization_sent_twice_is_refused(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    reply = await asgi(BearerAuthMiddleware(inner, token=token), headers=auth_headers * 2)
    assert reply.status == 401


async def test_header_over_8_kib_is_refused_even_with_the_right_prefix(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    long_token = Token("a" * 4096)
    app = BearerAuthMiddleware(inner, token=long_token)
    ok = await asgi(app, headers=[("authorization", f"Bearer {long_token.reveal()}")])
    assert ok.status == 200
    too_long = "Bearer " + "a" * (8192 - len("Bearer ") + 1)
    assert parse_bearer([too_long.encode()]).status is CredentialStatus.MALFORMED
    assert parse_bearer([too_long[:-1].encode()]).status is CredentialStatus.PRESENT
    reply = await asgi(app, headers=[("authorization", too_long)])
    assert reply.status == 401
    assert reply.error_code == "MISSING_API_KEY"


async def test_token_is_compared_with_hmac_compare_digest_on_bytes(
    asgi: AsgiCall,
    inner: InnerApp,
    token: Token,
    auth_headers: Headers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    app = BearerAuthMiddleware(inner, token=token)
    assert (await asgi(app, headers=auth_headers)).status == 200
    assert (await asgi(app, headers=[("authorization", "Bearer wrong")])).status == 401
    assert calls == [(bytes, bytes), (bytes, bytes)]


async def test_no_token_lets_every_route_pass_and_says_so_once(
    asgi: AsgiCall, inner: InnerApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="rbee_hive.auth"):
        app = BearerAuthMiddleware(inner, token=None)
        for _ in range(3):
            assert (await asgi(app, path="/v1/workers/spawn", method="POST")).status == 200
    off = [r for r in caplog.records if "authentication is OFF" in r.getMessage()]
    assert len(off) == 1
    assert off[0].levelno == logging.WARNING


async def test_lifespan_passes_through_untouched(inner: InnerApp, token: Token) -> None:
    app = BearerAuthMiddleware(inner, token=token)

    async def receive() -> dict[str, str]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        raise AssertionError("the middleware must not answer lifespan messages")

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert inner.scopes[0]["type"] == "lifespan"


async def test_websocket_without_token_is_closed_before_accept(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token)
    refused = await asgi(app, path="/v1/events", scope_type="websocket")
    assert refused.messages == [{"type": "websocket.close", "code": 1008}]
    accepted = await asgi(app, path="/v1/events", scope_type="websocket", headers=auth_headers)
    assert accepted.messages[0]["type"] == "websocket.accept"


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    forged = [*auth_headers, ("x-forwarded-for", "203.0.113.9")]
    plain = BearerAuthMiddleware(inner, token=token)
    await asgi(plain, headers=forged, client=("10.0.0.2", 1234))
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "10.0.0.2"
    proxied = BearerAuthMiddleware(
        inner, token=token, trusted_proxies=TrustedProxies(["10.0.0.0/24"])
    )
    await asgi(proxied, headers=forged, client=("10.0.0.2", 1234))
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "203.0.113.9"
    await asgi(proxied, headers=forged, client=("192.0.2.1", 1234))
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "192.0.2.1"
    chain = [*auth_headers, ("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.3")]
    await asgi(proxied, headers=chain, client=("10.0.0.2", 1234))
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "203.0.113.9"
    garbage = [*auth_headers, ("x-forwarded-for", "not-an-ip")]
    await asgi(proxied, headers=garbage, client=("10.0.0.2", 1234))
    assert inner.last_state[CLIENT_ADDRESS_KEY] == "10.0.0.2"


def test_bad_trusted_proxy_entry_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"'ten\.0\.0\.1'"):
        TrustedProxies(["ten.0.0.1"])


def test_public_paths_must_be_absolute(inner: InnerApp, token: Token) -> None:
    with pytest.raises(ValueError, match="health"):
        BearerAuthMiddleware(inner, token=token, public_paths=["health"])


def test_short_token_is_logged_as_weak(inner: InnerApp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rbee_hive.auth"):
        BearerAuthMiddleware(inner, token=Token("test"))
    assert "is 4 characters long; at least 32" in caplog.text
    assert "token:9f86d0" in caplog.text


async def test_requests_are_still_answered_while_the_audit_disk_is_full(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers, tmp_path: Path
) -> None:
    def full_disk(path: Path) -> AuditFile:
        raise OSError(errno.ENOSPC, "No space left on device")

    audit = AuditLog(tmp_path, opener=full_disk)
    app = BearerAuthMiddleware(inner, token=token, audit=audit)
    assert (await asgi(app, headers=auth_headers)).status == 200
    assert (await asgi(app)).status == 401
    assert (audit.dropped, audit.degraded) == (2, True)
