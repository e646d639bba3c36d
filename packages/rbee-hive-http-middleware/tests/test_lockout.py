from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from rbee_hive_http_middleware import (
    BearerAuthMiddleware,
    FailureTracker,
    LockoutPolicy,
    Token,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, FakeClock, InnerApp

pytestmark = pytest.mark.anyio
Headers = list[tuple[str | bytes, str | bytes]]
BAD = [("authorization", "Bearer wrong-guess")]
ATTACKER = ("192.0.2.66", 40000)
HONEST = ("192.0.2.10", 40001)


async def test_ten_wrong_tokens_in_the_window_lock_the_address_out(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(10):
        clock.advance(20)  # 10 failures spread over 200 s: inside the 5-minute window
        assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 401
    locked = await asgi(app, headers=BAD, client=ATTACKER)
    assert locked.status == 429
    assert locked.error_code == "TOO_MANY_AUTH_FAILURES"
    assert locked.header("retry-after") == "900"
    assert inner.scopes == []
    clock.advance(600)
    assert (await asgi(app, headers=BAD, client=ATTACKER)).header("retry-after") == "300"


async def test_the_right_token_is_never_refused_by_the_lockout(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(12):
        await asgi(app, headers=BAD, client=ATTACKER)
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 429
    reply = await asgi(app, headers=auth_headers, client=ATTACKER)
    assert reply.status == 200
    assert len(inner.scopes) == 1
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 429  # still locked


async def test_requests_without_a_token_never_lock_anyone_out(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    # queen-rbee sends its spawns without Authorization; from 127.0.0.1 that used to give
    # every client on the address, workers included, 429 for 15 minutes.
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    local = ("127.0.0.1", 50000)
    for _ in range(100):
        reply = await asgi(app, method="POST", path="/v1/workers/spawn", client=local)
        assert (reply.status, reply.error_code) == (401, "MISSING_API_KEY")
    for _ in range(100):
        reply = await asgi(app, headers=[("authorization", "Basic x")], client=local)
        assert (reply.status, reply.error_code) == (401, "MISSING_API_KEY")  # malformed
    assert app.locked_out_clients == 0
    assert (await asgi(app, headers=auth_headers, client=local)).status == 200
    assert (await asgi(app, headers=BAD, client=local)).status == 401  # not 429


async def test_other_clients_are_not_affected_by_a_locked_out_address(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(12):
        await asgi(app, headers=BAD, client=ATTACKER)
    assert (await asgi(app, headers=auth_headers, client=HONEST)).status == 200
    assert (await asgi(app, headers=BAD, client=HONEST)).status == 401
    assert (await asgi(app, path="/v1/health", client=ATTACKER)).status == 200


async def test_lockout_expires_after_fifteen_minutes(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(10):
        await asgi(app, headers=BAD, client=ATTACKER)
    clock.advance(899)
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 429
    clock.advance(1)
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 401


async def test_failures_spread_wider_than_the_window_do_not_lock(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(30):
        clock.advance(34)  # any 10 consecutive failures span 9 x 34 = 306 s > 300 s
        assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 401
    assert (await asgi(app, headers=auth_headers, client=ATTACKER)).status == 200


async def test_a_good_client_on_the_same_address_does_not_reset_a_guesser(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token, clock=clock)
    for _ in range(9):
        assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 401
        assert (await asgi(app, headers=auth_headers, client=ATTACKER)).status == 200
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 401  # the 10th guess
    assert (await asgi(app, headers=BAD, client=ATTACKER)).status == 429
    assert (await asgi(app, headers=auth_headers, client=ATTACKER)).status == 200


async def test_custom_policy_and_disabled_lockout(
    asgi: AsgiCall, inner: InnerApp, token: Token, clock: FakeClock, auth_headers: Headers
) -> None:
    strict = BearerAuthMiddleware(
        inner,
        token=token,
        clock=clock,
        lockout=LockoutPolicy(max_failures=2, window_seconds=10, lockout_seconds=30),
    )
    await asgi(strict, headers=BAD, client=ATTACKER)
    await asgi(strict, headers=BAD, client=ATTACKER)
    reply = await asgi(strict, headers=BAD, client=ATTACKER)
    assert (reply.status, reply.header("retry-after")) == (429, "30")
    off = BearerAuthMiddleware(
        inner, token=token, clock=clock, lockout=LockoutPolicy(enabled=False)
    )
    for _ in range(50):
        await asgi(off, headers=BAD, client=ATTACKER)
    assert (await asgi(off, headers=BAD, client=ATTACKER)).status == 401


def test_tracked_addresses_are_bounded_and_oldest_are_forgotten(clock: FakeClock) -> None:
    tracker = FailureTracker(LockoutPolicy(max_failures=2, max_tracked_clients=100), clock)
    tracker.record_failure("198.51.100.1")
    for i in range(1000):
        tracker.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(tracker) == 100
    assert tracker.retry_after("198.51.100.1") is None
    assert tracker.record_failure("10.0.3.231") is True  # the newest are still tracked


def test_policy_rejects_nonsense_values() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        LockoutPolicy(max_failures=0)
    with pytest.raises(ValueError, match="window_seconds"):
        LockoutPolicy(window_seconds=-1)
