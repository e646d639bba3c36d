"""Issue 6 through the daemon: every edge validates, the token never leaks, and concurrent
good and bad requests are told apart exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import pytest

from hive_harness import Daemon, DaemonFactory, pids_mentioning

pytestmark = pytest.mark.anyio

TOKEN = "tok-9f2c1d0e-never-print-me"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INJECTIONS = [
    "a\nb",
    "a\x1bb",
    "a\x00b",
    "a;b",
    "a|b",
    "a`id`b",
    "$(id)",
    "../../etc/passwd",
    "ünï\u202ecode",
    "<script>alert(1)</script>",
    "'; DROP TABLE models;--",
]


def _bodies(value: str, model_ref: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = {"model_ref": model_ref, "backend": "cpu", "device": 0, "model_path": ""}
    return [
        ("POST", "/v1/workers/spawn", {**base, "model_ref": "hf:org/" + value}),
        ("POST", "/v1/workers/spawn", {**base, "model_ref": value}),
        ("POST", "/v1/workers/spawn", {**base, "backend": value}),
        ("POST", "/v1/workers/spawn", {**base, "device": value}),
        ("POST", "/v1/workers/spawn", {**base, "engine": value}),
        ("POST", "/v1/models/download", {"model_ref": "hf:org/" + value}),
        ("POST", "/v1/models/verify", {"model_ref": value}),
        ("POST", "/v1/heartbeat", {"worker_id": value, "health_status": "healthy"}),
    ]


async def test_the_injection_set_is_rejected_at_every_input(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    _, catalog_before = await hive.call("GET", "/v1/models")
    for value in INJECTIONS:
        for method, path, body in _bodies(value, hive.model_ref):
            status, answer = await hive.call(method, path, body)
            assert 400 <= status < 500, (path, value, status, answer)
            assert answer["error"]["code"], answer
        for method, path in [
            ("GET", f"/v1/workers/{quote(value, safe='')}"),
            ("DELETE", f"/v1/workers/{quote(value, safe='')}"),
            ("GET", f"/v1/workers/{quote(value, safe='')}/logs"),
            ("DELETE", f"/v1/models?model_ref={quote(value, safe='')}"),
            ("GET", f"/v1/capacity?model_ref={quote(value, safe='')}&backend=cpu&device=0"),
            ("GET", f"/v1/capacity?model_ref={quote(hive.model_ref)}&backend={quote(value)}"),
            ("GET", f"/v1/models/download/progress?id={quote(value, safe='')}"),
        ]:
            status, answer = await hive.call(method, path)
            assert 400 <= status < 500, (path, status, answer)
    _, listing = await hive.call("GET", "/v1/workers/list")
    assert listing["workers"] == []
    assert pids_mentioning(str(hive.model.parent)) == []
    _, catalog_after = await hive.call("GET", "/v1/models")
    assert catalog_after == catalog_before
    log = hive.output()
    for value in ("\x1b", "\x00", "a\nb", "\u202e"):
        # Raw input never reaches the log unescaped: no terminal escapes, no NUL, no forged
        # line, no bidirectional override (they appear as \x1b, \n, \u202e escapes).
        assert value not in log


async def test_the_token_appears_nowhere_after_100_good_and_100_bad_requests(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"LLORCH_API_TOKEN": TOKEN, "RBEE_HIVE_AUTH_LOCKOUT_FAILURES": "1000"})
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        for n in range(100):
            for headers in (AUTH, {"Authorization": f"Bearer wrong-{n}-{TOKEN[::-1]}"}):
                async with session.get(hive.url + "/v1/workers/list", headers=headers) as resp:
                    seen.append(await resp.text())
                    seen.append(str(resp.headers))
        async with session.get(hive.url + "/metrics") as resp:
            metrics = await resp.text()
    assert sum('"workers"' in body for body in seen) == 100
    assert TOKEN not in "".join(seen)
    assert TOKEN not in metrics
    hive.stop()
    assert TOKEN not in hive.output()
    audit_files = list((hive.state_dir / "audit").glob("*.jsonl"))
    assert audit_files
    for path in audit_files:
        text = Path(path).read_text()
        assert TOKEN not in text
        assert '"auth_failure"' in text


async def _spread(hive: Daemon, good: int, bad: int) -> list[int]:
    """Good requests from 127.0.0.1, each bad one from its own loopback address."""
    statuses: list[int] = []

    async def one(headers: dict[str, str], source: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(source, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(hive.url + "/v1/workers/list", headers=headers) as resp,
        ):
            statuses.append(resp.status)

    async with anyio.create_task_group() as tg:
        for n in range(max(good, bad)):
            if n < good:
                tg.start_soon(one, AUTH, "127.0.0.1")
            if n < bad:
                tg.start_soon(one, {"Authorization": "Bearer nope"}, f"127.0.1.{n + 1}")
    return statuses


async def test_fifty_good_and_fifty_bad_at_once_exactly_fifty_succeed(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"LLORCH_API_TOKEN": TOKEN})
    statuses = await _spread(hive, 50, 50)
    assert statuses.count(200) == 50
    assert statuses.count(401) == 50


async def test_repeated_failures_lock_one_address_out_but_not_others(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"LLORCH_API_TOKEN": TOKEN})
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.9", 0))
    async with aiohttp.ClientSession(connector=connector) as attacker:
        codes = []
        for _ in range(12):
            async with attacker.get(
                hive.url + "/v1/workers/list", headers={"Authorization": "Bearer guess"}
            ) as resp:
                codes.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert retry_after is not None
    status, _ = await hive.call("GET", "/v1/workers/list", headers=AUTH)
    assert status == 200  # 127.0.0.1 is not affected
