"""Trusted networks: the explicit opt-in that lets an unmodified queen-rbee in without a token."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_http_middleware import (
    AUTH_IDENTITY_KEY,
    AuditLog,
    BearerAuthMiddleware,
    CallbackSecrets,
    Token,
    TrustedNetworks,
    TrustedProxies,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, InnerApp, Reply

pytestmark = pytest.mark.anyio
Headers = Sequence[tuple[str | bytes, str | bytes]]
QUEEN = ("10.1.2.3", 50000)
OUTSIDER = ("203.0.113.9", 50000)
LAN = TrustedNetworks(["10.0.0.0/8"])


async def spawn(
    asgi: AsgiCall, app: BearerAuthMiddleware, client: tuple[str, int] | None, headers: Headers = ()
) -> Reply:
    return await asgi(app, method="POST", path="/v1/workers/spawn", client=client, headers=headers)


async def test_without_a_token_only_the_trusted_networks_are_admitted(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BearerAuthMiddleware(inner, token=None, trusted_networks=LAN)
    admitted = await spawn(asgi, app, QUEEN)
    assert admitted.status == 200
    assert inner.last_state[AUTH_IDENTITY_KEY] == "trusted-network:10.0.0.0/8"
    refused = await spawn(asgi, app, OUTSIDER)
    assert (refused.status, refused.error_code) == (401, "UNTRUSTED_NETWORK")
    message = refused.json()["error"]["message"]
    assert "10.0.0.0/8" in message
    assert "trusted_networks" in message  # names the fix
    assert len(inner.scopes) == 1


async def test_with_a_token_trusted_networks_skip_it_and_others_still_need_it(
    asgi: AsgiCall, inner: InnerApp, token: Token, auth_headers: Headers
) -> None:
    app = BearerAuthMiddleware(inner, token=token, trusted_networks=LAN)
    assert (await spawn(asgi, app, QUEEN)).status == 200
    assert inner.last_state[AUTH_IDENTITY_KEY] == "trusted-network:10.0.0.0/8"
    missing = await spawn(asgi, app, OUTSIDER)
    assert (missing.status, missing.error_code) == (401, "MISSING_API_KEY")
    assert "trusted networks 10.0.0.0/8" in missing.json()["error"]["message"]
    assert (await spawn(asgi, app, OUTSIDER, auth_headers)).status == 200
    assert inner.last_state[AUTH_IDENTITY_KEY] == token.identity
    # A token that is sent is checked, trusted network or not.
    wrong = await spawn(asgi, app, QUEEN, [("authorization", "Bearer wrong")])
    assert (wrong.status, wrong.error_code) == (401, "INVALID_API_KEY")


async def test_forwarded_for_never_widens_the_trusted_networks(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BearerAuthMiddleware(inner, token=None, trusted_networks=LAN)
    spoofed: Headers = [("x-forwarded-for", "10.1.2.3")]
    assert (await spawn(asgi, app, OUTSIDER, spoofed)).status == 401
    # Behind a trusted proxy inside the network, the forwarded client must be inside too.
    proxied = BearerAuthMiddleware(
        inner,
        token=None,
        trusted_networks=LAN,
        trusted_proxies=TrustedProxies(["10.9.9.9"]),
    )
    proxy = ("10.9.9.9", 443)
    outside: Headers = [("x-forwarded-for", "203.0.113.9")]
    assert (await spawn(asgi, proxied, proxy, outside)).status == 401
    inside: Headers = [("x-forwarded-for", "10.4.4.4")]
    assert (await spawn(asgi, proxied, proxy, inside)).status == 200


async def test_ipv4_mapped_peers_of_a_dual_stack_socket_count_as_ipv4(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    app = BearerAuthMiddleware(inner, token=None, trusted_networks=LAN)
    assert (await spawn(asgi, app, ("::ffff:10.1.2.3", 1))).status == 200
    assert (await spawn(asgi, app, ("::ffff:203.0.113.9", 1))).status == 401
    assert (await spawn(asgi, app, ("unknown", 1))).status == 401
    assert (await spawn(asgi, app, None)).status == 401


async def test_admission_is_logged_loudly_once_per_address_and_audited_as_such(
    asgi: AsgiCall, inner: InnerApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(tmp_path / "audit")
    with caplog.at_level(logging.DEBUG, logger="rbee_hive.auth"):
        app = BearerAuthMiddleware(inner, token=None, trusted_networks=LAN, audit=audit)
        for _ in range(3):
            await spawn(asgi, app, QUEEN)
        await spawn(asgi, app, ("10.7.7.7", 1))
    audit.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("only clients in the trusted networks 10.0.0.0/8" in w for w in warnings)
    admitted = [w for w in warnings if "WITHOUT a token" in w]
    assert admitted == [
        "admitting requests WITHOUT a token from 10.1.2.3 (trusted network 10.0.0.0/8)",
        "admitting requests WITHOUT a token from 10.7.7.7 (trusted network 10.0.0.0/8)",
    ]
    records = [
        json.loads(line)
        for path in (tmp_path / "audit").iterdir()
        for line in path.read_text().splitlines()
    ]
    successes = [r for r in records if r["event"] == "auth_success"]
    assert len(successes) == 4
    assert successes[0]["actor"] == "trusted-network:10.0.0.0/8"
    assert successes[0]["details"]["via"] == "trusted_network"
    assert successes[0]["details"]["network"] == "10.0.0.0/8"
    assert successes[0]["client"] == "10.1.2.3"


async def test_callbacks_still_need_their_secret_in_trusted_network_mode(
    asgi: AsgiCall, inner: InnerApp
) -> None:
    store = CallbackSecrets()
    secret = store.issue("worker-1")
    app = BearerAuthMiddleware(
        inner, token=None, trusted_networks=LAN, callback_authenticator=store
    )
    local = ("127.0.0.1", 1)
    ok = await asgi(app, method="POST", path=store.callback_path(secret), client=local)
    assert ok.status == 200
    stale = await asgi(app, method="POST", path=store.callback_path("S" * 43), client=QUEEN)
    assert stale.status == 401


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("0.0.0.0/0", "admits every address"),
        ("::/0", "admits every address"),
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "not a network in CIDR form"),
        ("example.com", "not a network in CIDR form"),
        ("", "not a network in CIDR form"),
    ],
)
def test_bad_entries_are_refused_naming_the_setting_and_the_entry(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match="trusted_networks entry") as info:
        TrustedNetworks([entry])
    assert message in str(info.value)
    assert repr(entry) in str(info.value) or entry in str(info.value)


def test_networks_are_parsed_once_and_described() -> None:
    trusted = TrustedNetworks(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
    assert str(trusted) == "10.0.0.0/8, 192.168.1.7/32, fd00::/8"
    assert trusted.network_of("192.168.1.7") == ipaddress.ip_network("192.168.1.7/32")
    assert trusted.network_of("192.168.1.8") is None
    assert not TrustedNetworks()
    with pytest.raises(TypeError, match="list"):
        TrustedNetworks("10.0.0.0/8")  # a str is an Iterable[str], so only a runtime check helps
