from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_http_middleware import (
    CALLBACK_WORKER_ID_KEY,
    AuditLog,
    BearerAuthMiddleware,
    CallbackSecrets,
    Token,
    callback_worker_id,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, FakeClock, InnerApp

pytestmark = pytest.mark.anyio
Headers = list[tuple[str | bytes, str | bytes]]


def _app(inner: InnerApp, token: Token | None, store: CallbackSecrets) -> BearerAuthMiddleware:
    return BearerAuthMiddleware(inner, token=token, callback_authenticator=store)


async def test_ready_callback_with_its_secret_passes_without_bearer(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    reply = await asgi(_app(inner, token, store), method="POST", path=store.callback_path(secret))
    assert reply.status == 200
    assert inner.last_state[CALLBACK_WORKER_ID_KEY] == "worker-1"
    assert callback_worker_id(inner.scopes[-1]) == "worker-1"


async def test_heartbeat_path_under_the_callback_url_passes(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    path = store.heartbeat_path(secret)
    assert path == f"/v1/workers/ready/{secret}/v1/heartbeat"
    reply = await asgi(_app(inner, token, store), method="POST", path=path)
    assert reply.status == 200
    assert callback_worker_id(inner.scopes[-1]) == "worker-1"


async def test_each_secret_maps_to_its_own_worker(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    store = CallbackSecrets()
    first, second = store.issue("worker-1"), store.issue("worker-2")
    app = _app(inner, token, store)
    await asgi(app, method="POST", path=store.callback_path(second))
    assert callback_worker_id(inner.scopes[-1]) == "worker-2"
    await asgi(app, method="POST", path=store.callback_path(first))
    assert callback_worker_id(inner.scopes[-1]) == "worker-1"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/workers/ready/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/v1/workers/ready/short",
        "/v1/workers/ready/",
        "/v1/workers/ready/{secret}x",
        "/v1/workers/ready/{secret}/v1/other",
        "/v1/workers/ready/{secret}/../../v1/workers/spawn",
    ],
)
async def test_wrong_secret_is_401_invalid_and_reaches_nothing(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers, path: str
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    app = _app(inner, token, store)
    # A valid bearer token does not open a callback path: only its secret does.
    reply = await asgi(app, method="POST", path=path.format(secret=secret), headers=auth_headers)
    assert reply.status == 401
    assert reply.error_code == "INVALID_API_KEY"
    assert inner.scopes == []
    assert len(store) == 1


async def test_revoked_and_reissued_secrets_stop_working(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    store = CallbackSecrets()
    old = store.issue("worker-1")
    new = store.issue("worker-1")  # a restart gets a new secret; the old one dies
    app = _app(inner, token, store)
    assert (await asgi(app, method="POST", path=store.callback_path(old))).status == 401
    assert (await asgi(app, method="POST", path=store.callback_path(new))).status == 200
    store.revoke("worker-1")
    assert (await asgi(app, method="POST", path=store.callback_path(new))).status == 401
    store.revoke("never-issued")
    assert inner.scopes[-1]["state"][CALLBACK_WORKER_ID_KEY] == "worker-1"


async def test_plain_ready_route_still_needs_the_bearer_token(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    store = CallbackSecrets()
    app = _app(inner, token, store)
    assert (await asgi(app, method="POST", path="/v1/workers/ready")).status == 401
    reply = await asgi(app, method="POST", path="/v1/workers/ready", headers=auth_headers)
    assert reply.status == 200
    assert callback_worker_id(inner.scopes[-1]) is None


async def test_callback_secret_never_reaches_logs_or_audit(
    asgi: AsgiCall,
    inner: InnerApp,
    token: Token,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    audit = AuditLog(tmp_path / "audit")
    app = BearerAuthMiddleware(inner, token=token, callback_authenticator=store, audit=audit)
    guess = "G" * 43
    with caplog.at_level(logging.DEBUG):
        await asgi(app, method="POST", path=store.callback_path(secret))
        await asgi(app, method="POST", path=store.heartbeat_path(secret))
        await asgi(app, method="POST", path=store.callback_path(guess))
    audit.close()
    written = "".join(p.read_text() for p in (tmp_path / "audit").iterdir())
    for text in (caplog.text, written):
        assert secret not in text
        assert guess not in text
    assert "/v1/workers/ready/<secret>/v1/heartbeat" in written
    assert "worker:worker-1" in written


async def test_without_a_token_a_valid_callback_still_names_its_worker(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    app = _app(inner, None, store)
    await asgi(app, method="POST", path=store.callback_path(secret))
    assert callback_worker_id(inner.scopes[-1]) == "worker-1"
    await asgi(app, method="POST", path=store.callback_path("X" * 43))
    assert callback_worker_id(inner.scopes[-1]) is None


def test_store_parses_and_redacts_paths() -> None:
    store = CallbackSecrets()
    secret = store.issue("w")
    assert store.worker_for(secret) == "w"
    assert store.worker_for("not valid!") is None
    assert store.secret_in_path(store.heartbeat_path(secret)) == secret
    assert store.secret_in_path("/v1/heartbeat") is None
    assert store.redact_path(store.heartbeat_path(secret)) == (
        "/v1/workers/ready/<secret>/v1/heartbeat"
    )
    assert secret not in repr(store)
    with pytest.raises(ValueError, match="prefix"):
        CallbackSecrets(prefix="/no-trailing-slash")


async def test_worker_callbacks_pass_from_an_address_locked_out_for_wrong_tokens(
    asgi: AsgiCall, inner: InnerApp, token: Token
) -> None:
    # Workers call back from 127.0.0.1, the address queen-rbee and the CLI use too.
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    app = _app(inner, token, store)
    local = ("127.0.0.1", 40000)
    for _ in range(15):
        await asgi(app, headers=[("authorization", "Bearer guess")], client=local)
    assert (await asgi(app, headers=[("authorization", "Bearer x")], client=local)).status == 429
    for path in (store.callback_path(secret), store.heartbeat_path(secret)):
        reply = await asgi(app, method="POST", path=path, client=local)
        assert reply.status == 200
        assert callback_worker_id(inner.scopes[-1]) == "worker-1"


async def test_an_orphans_rejected_heartbeats_lock_nobody_out(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    # A worker the hive no longer knows (its secret died with the old hive) keeps posting
    # heartbeats: each is refused, and none counts against the address it shares.
    store = CallbackSecrets()
    app = _app(inner, token, store)
    local = ("127.0.0.1", 40000)
    stale = store.heartbeat_path("S" * 43)
    for _ in range(100):
        reply = await asgi(app, method="POST", path=stale, client=local)
        assert (reply.status, reply.error_code) == (401, "INVALID_API_KEY")
    assert app.locked_out_clients == 0
    secret = store.issue("worker-2")
    assert (
        await asgi(app, method="POST", path=store.callback_path(secret), client=local)
    ).status == 200
    assert (await asgi(app, headers=auth_headers, client=local)).status == 200
    assert (await asgi(app, headers=[("authorization", "Bearer x")], client=local)).status == 401


async def test_refusals_that_are_no_guess_are_audited_once_a_minute_per_client(
    asgi: AsgiCall, inner: InnerApp, token: Token, tmp_path: Path, clock: FakeClock
) -> None:
    # Wrong tokens are audited (and fsynced) one by one; a client that simply keeps asking
    # without a token must not make the hive fsync a record per request.
    store = CallbackSecrets()
    audit = AuditLog(tmp_path / "audit")
    app = BearerAuthMiddleware(
        inner, token=token, callback_authenticator=store, audit=audit, clock=clock
    )
    for _ in range(50):
        await asgi(app, client=("192.0.2.1", 1))
        await asgi(app, method="POST", path=store.heartbeat_path("S" * 43), client=("192.0.2.1", 1))
    clock.advance(61)
    await asgi(app, client=("192.0.2.1", 1))
    await asgi(app, client=("192.0.2.2", 1))
    for n in range(3):
        await asgi(app, headers=[("authorization", f"Bearer wrong{n}")], client=("192.0.2.1", 1))
    audit.close()
    records = [
        json.loads(line)
        for path in sorted((tmp_path / "audit").iterdir())
        for line in path.read_text().splitlines()
    ]
    failures = [r for r in records if r["event"] == "auth_failure"]
    reasons = [(r["client"], r["details"]["reason"]) for r in failures]
    assert reasons == [
        ("192.0.2.1", "no Authorization header"),
        ("192.0.2.1", "unknown or revoked callback secret"),
        ("192.0.2.1", "no Authorization header"),
        ("192.0.2.2", "no Authorization header"),
        ("192.0.2.1", "invalid token"),
        ("192.0.2.1", "invalid token"),
        ("192.0.2.1", "invalid token"),
    ]
    assert failures[2]["details"]["similar_refusals_not_recorded"] == 49
