"""The harness: the real daemon as a subprocess on a free loopback port, with the fake worker."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

REPO = Path(__file__).resolve().parents[2]
FAKE_WORKER = REPO / "packages" / "rbee-hive-monitor" / "tests" / "fake_worker.py"
RBEE_HIVE = Path(sys.executable).parent / "rbee-hive"

# Fast supervision for tests; every value is an ordinary setting a user could set.
FAST = {
    "RBEE_HIVE_PROBE_INTERVAL": "0.5",
    "RBEE_HIVE_PROBE_TIMEOUT": "0.5",
    "RBEE_HIVE_PROBE_FAILURE_THRESHOLD": "2",
    "RBEE_HIVE_RESTART_BACKOFF_BASE": "0.2",
    "RBEE_HIVE_RESTART_BACKOFF_CAP": "0.5",
    "RBEE_HIVE_STOP_TIMEOUT": "2",
    "RBEE_HIVE_SHUTDOWN_DEADLINE": "10",
    "RBEE_HIVE_LOADING_TIMEOUT": "20",
    "RBEE_HIVE_RAM_RESERVE": "0",
    "RBEE_HIVE_MAX_WORKERS_PER_DEVICE": "64",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Worker ports: blocks of 100 between 10000 and Linux's ephemeral range (32768 and up, where
# bind(0) and outgoing connections take theirs), in an order drawn once per test process. Two
# daemons of one run never share a block, two runs on one machine rarely do, and the daemon's
# allocator skips a port that is busy anyway.
_PORT_BLOCK = 100
_PORT_BLOCKS = random.sample(range(10_000, 32_700, _PORT_BLOCK), k=len(range(10_000, 32_700, 100)))


def random_port_range() -> tuple[int, int]:
    """A block of worker ports no other daemon of this test run has been given."""
    if not _PORT_BLOCKS:
        raise RuntimeError("every worker port block between 10000 and 32700 is taken")
    first = _PORT_BLOCKS.pop()
    return first, first + _PORT_BLOCK - 1


def pids_mentioning(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


class Daemon:
    """One ``rbee-hive daemon`` process."""

    def __init__(self, tmp: Path, env: dict[str, str], args: list[str]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.port_range = random_port_range()
        self.state_dir = tmp / "state"
        self.log_path = tmp / "daemon.log"
        self.model = tmp / "models" / "tiny.gguf"
        self.model.parent.mkdir(parents=True, exist_ok=True)
        self.model.write_bytes(b"GGUF" + bytes(1020))
        full_env = {
            **os.environ,
            **FAST,
            "RBEE_HIVE_PORT_RANGE": "{}-{}".format(*self.port_range),
            "HF_HUB_CACHE": str(tmp / "hub"),
            **env,
        }
        self._log = self.log_path.open("wb")
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
                *args,
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def model_ref(self) -> str:
        return f"file:{self.model}"

    def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"daemon did not listen within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        for pid in pids_mentioning(str(self.tmp)):  # never leave a worker behind a failed test
            os.kill(pid, signal.SIGKILL)

    # ---------------------------------------------------------------- HTTP

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.request(method, self.url + path, json=body, headers=headers) as resp,
        ):
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except json.JSONDecodeError:
                return resp.status, text

    async def spawn(self, **overrides: Any) -> tuple[int, Any]:
        body = {"model_ref": self.model_ref, "backend": "cpu", "device": 0, "model_path": ""}
        body.update(overrides)
        return await self.call("POST", "/v1/workers/spawn", body)

    async def worker(self, worker_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/v1/workers/{worker_id}")
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    async def wait_for(
        self, worker_id: str, predicate: Any, timeout: float = 20, what: str = "condition"
    ) -> dict[str, Any]:
        with anyio.move_on_after(timeout):
            while True:
                worker = await self.worker(worker_id)
                if predicate(worker):
                    return worker
                await anyio.sleep(0.05)
        raise AssertionError(f"worker {worker_id}: {what} not reached in {timeout}s:\n{worker}")


class DaemonFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.daemons: list[Daemon] = []

    def __call__(self, env: dict[str, str] | None = None, args: list[str] | None = None) -> Daemon:
        tmp = self.tmp_path / f"hive{len(self.daemons)}"
        tmp.mkdir()
        daemon = Daemon(tmp, env or {}, args or [])
        self.daemons.append(daemon)
        daemon.wait_healthy()
        return daemon
