"""Issues 6 and 9 through the daemon: every edge validates, the token never leaks, concurrent
good and bad requests are told apart exactly, the lockout never locks the hive out of itself,
and trusted networks let a queen-rbee without a token in, and nobody else."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import pytest

from hive_harness import RBEE_HIVE, Daemon, DaemonFactory, free_port, pids_mentioning

pytestmark = pytest.mark.anyio

TOKEN = "tok-9f2c1d0e-never-print-me-7Qx3Lp0WzK"
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


async def test_repeated_wrong_tokens_lock_one_address_out_but_not_others(
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
        async with attacker.get(hive.url + "/v1/workers/list", headers=AUTH) as resp:
            own_token_status = resp.status
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert retry_after is not None
    assert own_token_status == 200  # the right token is never refused by the lockout
    status, _ = await hive.call("GET", "/v1/workers/list", headers=AUTH)
    assert status == 200  # 127.0.0.1 is not affected


async def test_a_queen_without_a_token_never_locks_the_hive_out_of_itself(
    start_daemon: DaemonFactory,
) -> None:
    # Issue 9.2: queen-rbee sends its spawns with no Authorization from 127.0.0.1. Ten of them
    # used to lock the address out for 15 minutes: the workers' ready callbacks and heartbeats
    # got 429, so a restarted worker could never become ready again.
    hive = start_daemon({"LLORCH_API_TOKEN": TOKEN, "FAKE_WORKER_HEARTBEAT_S": "0.2"})
    status, body = await hive.call("POST", "/v1/workers/spawn", _spawn_body(hive), AUTH)
    assert status == 200, body
    worker_id = body["worker_id"]
    first = await _wait_for(hive, worker_id, lambda w: w["state"] == "idle")
    for _ in range(25):
        status, answer = await hive.call("POST", "/v1/workers/spawn", _spawn_body(hive))
        assert (status, answer["error"]["code"]) == (401, "MISSING_API_KEY"), answer
    for _ in range(25):  # an orphan's heartbeats, at a secret this hive never issued
        status, answer = await hive.call(
            "POST", f"/v1/workers/ready/{'S' * 43}/v1/heartbeat", {"worker_id": "worker-x"}
        )
        assert status == 401, answer
    os.kill(first["pid"], signal.SIGKILL)  # the restarted worker must call back from 127.0.0.1
    second = await _wait_for(
        hive, worker_id, lambda w: w["state"] == "idle" and w["pid"] not in (None, first["pid"])
    )
    assert second["restart_count"] == 1
    beat = second["last_heartbeat"]
    third = await _wait_for(hive, worker_id, lambda w: w["last_heartbeat"] != beat)
    assert third["state"] == "idle"  # heartbeats from 127.0.0.1 still arrive
    status, _ = await hive.call("GET", "/v1/workers/list", headers=AUTH)
    assert status == 200


def _spawn_body(hive: Daemon) -> dict[str, Any]:
    return {"model_ref": hive.model_ref, "backend": "cpu", "device": 0, "model_path": ""}


async def _wait_for(
    hive: Daemon, worker_id: str, predicate: Any, timeout: float = 20
) -> dict[str, Any]:
    worker: Any = None
    with anyio.move_on_after(timeout):
        while True:
            status, worker = await hive.call("GET", f"/v1/workers/{worker_id}", headers=AUTH)
            assert status == 200, worker
            if predicate(worker):
                return dict(worker)
            await anyio.sleep(0.05)
    raise AssertionError(f"worker {worker_id}: condition not reached in {timeout}s:\n{worker}")


def _refused_start(
    tmp_path: Path, host: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Start the daemon on ``host`` with ``env`` (and no LLORCH_API_TOKEN unless it names one)
    and ``args``; check that it refused to start (exit 2), and return what it printed."""
    result = subprocess.run(
        [
            str(RBEE_HIVE),
            "daemon",
            "--addr",
            f"{host}:{free_port()}",
            "--state-dir",
            str(tmp_path / "state"),
            *args,
        ],
        env={k: v for k, v in os.environ.items() if k != "LLORCH_API_TOKEN"}
        | {"XDG_CONFIG_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    return result


async def test_a_weak_token_stops_the_daemon_at_start_up(tmp_path: Path) -> None:
    result = _refused_start(tmp_path, "127.0.0.1", {"LLORCH_API_TOKEN": "queen-tok"})
    assert "LLORCH_API_TOKEN is 9 characters long; at least 32" in result.stderr
    assert "secrets.token_urlsafe(32)" in result.stderr


# ---------------------------------------------------------------- trusted networks


def _public(start_daemon: DaemonFactory, env: dict[str, str]) -> Daemon:
    """A daemon listening on every address (the harness's own --addr is overridden)."""
    port = free_port()
    tmp = start_daemon.tmp_path / f"public{len(start_daemon.daemons)}"
    tmp.mkdir()
    hive = Daemon(tmp, env, ["--addr", f"0.0.0.0:{port}"])
    start_daemon.daemons.append(hive)
    hive.port, hive.url = port, f"http://127.0.0.1:{port}"
    hive.wait_healthy()
    return hive


def _this_machines_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return None
    for previous, line in itertools.pairwise(lines):
        address = previous.strip().removeprefix("|-- ")
        if "/32 host LOCAL" in line and not address.startswith("127."):
            return address
    return None


async def _get_from(hive: Daemon, source: str, path: str = "/v1/workers/list") -> tuple[int, Any]:
    target = hive.url if source.startswith("127.") else f"http://{source}:{hive.port}"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(target + path) as resp,
    ):
        return resp.status, await resp.json()


async def test_a_public_bind_without_a_token_or_trusted_networks_is_still_refused(
    tmp_path: Path,
) -> None:
    result = _refused_start(tmp_path, "0.0.0.0", {})
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "trusted_networks" in result.stderr


async def test_a_queen_in_a_trusted_network_spawns_without_a_token_and_others_are_refused(
    start_daemon: DaemonFactory,
) -> None:
    # Issue 9.3: the unmodified queen starts remote hives with --addr 0.0.0.0:8080 and no
    # token, and sends no Authorization.
    own = _this_machines_address()
    trusted = "10.0.0.0/8" if own is None else f"{own}/32"
    env = {"RBEE_HIVE_TRUSTED_NETWORKS": trusted}
    env_without_token = {**env, "LLORCH_API_TOKEN": ""}
    hive = _public(start_daemon, env_without_token)
    log = hive.output()
    assert f"requests WITHOUT a token are admitted from {trusted}" in log
    # This machine (the CLI, rbee-keeper over SSH) is trusted too when there is no token.
    status, body = await hive.call("POST", "/v1/workers/spawn", _spawn_body(hive))
    assert status == 200, body
    if own is not None:  # a peer inside the trusted network, over a real interface
        status, listing = await _get_from(hive, own)
        assert status == 200, listing
    hive.stop()
    audit = "".join(p.read_text() for p in (hive.state_dir / "audit").glob("*.jsonl"))
    records = [json.loads(line) for line in audit.splitlines()]
    # Every API call was admitted by its network; the worker's own callbacks by their secret.
    admitted = [
        r for r in records if r["event"] == "auth_success" and not r["actor"].startswith("worker:")
    ]
    assert admitted
    assert all(r["actor"].startswith("trusted-network:") for r in admitted)
    assert all(r["details"]["via"] == "trusted_network" for r in admitted)
    assert all("token:" not in json.dumps(r) for r in admitted)


async def test_with_a_token_trusted_networks_are_admitted_without_it_and_others_need_it(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"LLORCH_API_TOKEN": TOKEN, "RBEE_HIVE_TRUSTED_NETWORKS": "127.0.0.2/32"})
    status, body = await _get_from(hive, "127.0.0.2")
    assert status == 200, body
    status, body = await _get_from(hive, "127.0.0.3")
    assert status == 401
    assert body["error"]["code"] == "MISSING_API_KEY"
    assert "127.0.0.2/32" in body["error"]["message"]
    status, body = await hive.call("GET", "/v1/workers/list", headers=AUTH)
    assert status == 200


async def test_a_trusted_network_that_admits_the_world_stops_start_up(tmp_path: Path) -> None:
    result = _refused_start(tmp_path, "0.0.0.0", {}, "--trusted-networks", "0.0.0.0/0")
    assert "setting 'trusted_networks' from --trusted-networks" in result.stderr
    assert "admits every address" in result.stderr
