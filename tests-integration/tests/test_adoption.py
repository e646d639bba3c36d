"""Issue 9.4: a daemon killed with kill -9 and started again adopts the workers it left running
(same ids, URLs, ports and processes; no restarts; no failed requests), or, with
--kill-workers-on-exit, leaves none behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from hive_harness import FAKE_WORKER, FAST, RBEE_HIVE, Daemon, DaemonFactory

WORKER_ENV = {"FAKE_WORKER_HEARTBEAT_S": "0.3"}

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform != "linux", reason="adoption needs /proc and pidfd"),
]


class RestartedDaemon(Daemon):
    """A daemon on the same address and state folder as ``first``, started after it died."""

    def __init__(self, first: Daemon, env: dict[str, str], args: list[str] | None = None) -> None:
        # Not Daemon.__init__: that picks a new port and a new log; this one keeps the address
        # (workers post heartbeats to it) and the state folder (workers.json).
        self.tmp = first.tmp
        self.port = first.port
        self.url = first.url
        self.state_dir = first.state_dir
        self.model = first.model
        self.log_path = first.tmp / "daemon-restarted.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, **FAST, "HF_HUB_CACHE": str(first.tmp / "hub"), **env}
        self.proc = subprocess.Popen(
            [
                str(RBEE_HIVE),
                "daemon",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--state-dir",
                str(self.state_dir),
                "--worker-binary",
                str(FAKE_WORKER),
                *(args or []),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


def listening_pid(port: int) -> int | None:
    """The process with a socket listening on ``port`` (any address), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(entry.name)
    return None


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` and a server could bind it again (connections of our own
    traffic may linger in TIME_WAIT, as they would for any server)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return listening_pid(port) is None


def metric(text: str, name: str) -> float:
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    ]
    return sum(values)


async def spawn_ready(hive: Daemon, count: int) -> list[dict[str, Any]]:
    ids = []
    for _ in range(count):
        status, body = await hive.spawn()
        assert status == 200, body
        ids.append(body["worker_id"])
    return [
        await hive.wait_for(i, lambda w: w["state"] == "idle" and w["pid"], what="idle")
        for i in ids
    ]


async def wait_recorded(hive: Daemon, ids: list[str]) -> None:
    """Until workers.json lists the workers as ready (it is written just after the change)."""
    path = hive.state_dir / "workers.json"
    with anyio.fail_after(10):
        while True:
            try:
                workers = json.loads(path.read_text())["workers"]
            except (OSError, ValueError, KeyError):
                workers = []
            if sorted(w["id"] for w in workers if w["ready"]) == sorted(ids):
                return
            await anyio.sleep(0.02)


async def test_a_daemon_killed_with_kill_9_adopts_its_three_workers_on_restart(
    start_daemon: DaemonFactory,
) -> None:
    first = start_daemon(WORKER_ENV)
    workers = await spawn_ready(first, 3)
    ids = [w["id"] for w in workers]
    await wait_recorded(first, ids)
    for w in workers:
        assert listening_pid(w["port"]) == w["pid"]

    failures: list[str] = []
    served = 0
    stop_traffic = anyio.Event()

    async def traffic() -> None:
        # Requests to every worker, all through the daemon's death and restart.
        nonlocal served
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while not stop_traffic.is_set():
                for w in workers:
                    try:
                        async with session.get(f"{w['url']}/health") as resp:
                            if resp.status != 200:
                                failures.append(f"{w['id']}: {resp.status}")
                            served += 1
                    except aiohttp.ClientError as err:
                        failures.append(f"{w['id']}: {err!r}")
                await anyio.sleep(0.02)

    async with anyio.create_task_group() as tg:
        tg.start_soon(traffic)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        served_before = served
        with anyio.fail_after(5):  # the workers serve while no daemon runs
            while served < served_before + 6:
                await anyio.sleep(0.02)
        restarted = RestartedDaemon(first, WORKER_ENV)
        start_daemon.daemons.append(restarted)
        restarted.wait_healthy()
        _, listing = await restarted.call("GET", "/v1/workers/list")
        await anyio.sleep(1.2)  # more than two probe intervals of traffic after adoption
        stop_traffic.set()
    assert failures == []

    by_id = {w["id"]: w for w in listing["workers"]}
    assert sorted(by_id) == sorted(ids)
    for before in workers:
        now = by_id[before["id"]]
        assert (now["url"], now["port"], now["pid"]) == (
            before["url"],
            before["port"],
            before["pid"],
        )
        assert now["state"] == "idle"
        assert now["restart_count"] == 0
        assert listening_pid(before["port"]) == before["pid"]  # still the same process

    # Probes and heartbeats resume: still ready, no failed checks, fresh heartbeats arrive
    # through the callback URL the first daemon gave (its secret was restored).
    for worker_id in ids:
        now = await restarted.wait_for(
            worker_id,
            lambda w: w["last_heartbeat"] is not None,
            timeout=5,
            what="a heartbeat to the restarted daemon",
        )
        assert now["state"] == "idle"
        assert now["failed_health_checks"] == 0
    _, text = await restarted.call("GET", "/metrics")
    assert metric(text, "rbee_hive_worker_restarts_total") == 0
    assert metric(text, "rbee_hive_worker_crashes_total") == 0
    assert "adopted 3 worker(s)" in restarted.output()

    for before in workers:
        status, body = await restarted.call("DELETE", f"/v1/workers/{before['id']}")
        assert status == 200, body
        assert body["outcome"] == "graceful"
        assert gone(before["pid"])
        assert port_free(before["port"])
    _, listing = await restarted.call("GET", "/v1/workers/list")
    assert listing["workers"] == []


async def test_with_kill_workers_on_exit_the_workers_die_with_a_killed_daemon(
    start_daemon: DaemonFactory,
) -> None:
    first = start_daemon(WORKER_ENV, ["--kill-workers-on-exit"])
    workers = await spawn_ready(first, 2)
    await wait_recorded(first, [w["id"] for w in workers])
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    deadline = time.monotonic() + 5
    while not all(gone(w["pid"]) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(gone(w["pid"]) for w in workers)
    restarted = RestartedDaemon(first, WORKER_ENV)
    start_daemon.daemons.append(restarted)
    restarted.wait_healthy()
    _, listing = await restarted.call("GET", "/v1/workers/list")
    assert listing["workers"] == []
    assert "adopted 0 worker(s), stopping 0, dropped 2" in restarted.output()
