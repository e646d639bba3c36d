"""Many requests at once through the auth middleware.

The lockout would refuse the bad client after 10 failures, so the first test gives each bad
request its own client address, and the second shows what happens when they share one.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from rbee_hive_http_middleware import BearerAuthMiddleware, Scope, Token

if TYPE_CHECKING:
    from conftest import AsgiCall

pytestmark = pytest.mark.anyio
Headers = list[tuple[str | bytes, str | bytes]]


class SlowApp:
    """Yields to the event loop mid-request so that requests really interleave."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        self.in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _run_all(
    asgi: AsgiCall, app: BearerAuthMiddleware, requests: list[tuple[Headers, tuple[str, int]]]
) -> Counter[int]:
    statuses: Counter[int] = Counter()

    async def one(headers: Headers, client: tuple[str, int]) -> None:
        statuses[(await asgi(app, headers=headers, client=client)).status] += 1

    async with anyio.create_task_group() as tg:
        for headers, client in requests:
            tg.start_soon(one, headers, client)
    return statuses


async def test_fifty_good_and_fifty_bad_concurrent_requests_exactly_fifty_succeed(
    asgi: AsgiCall, token: Token, auth_headers: Headers
) -> None:
    inner = SlowApp()
    app = BearerAuthMiddleware(inner, token=token)
    bad: Headers = [("authorization", "Bearer guessed-wrong")]
    requests = [(auth_headers, ("10.0.0.1", 1000 + i)) for i in range(50)]
    requests += [(bad, (f"10.9.0.{i}", 2000)) for i in range(50)]
    statuses = await _run_all(asgi, app, requests)
    assert statuses == Counter({200: 50, 401: 50})
    assert inner.most_in_flight > 1


async def test_bad_client_sharing_one_address_is_locked_out_without_hurting_others(
    asgi: AsgiCall, token: Token, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(SlowApp(), token=token)
    bad: Headers = [("authorization", "Bearer guessed-wrong")]
    requests = [(auth_headers, ("10.0.0.1", 1000)) for _ in range(50)]
    requests += [(bad, ("10.9.9.9", 2000)) for _ in range(50)]
    statuses = await _run_all(asgi, app, requests)
    assert statuses == Counter({200: 50, 401: 10, 429: 40})
