"""Issue 9.1: clients that close early leave no socket behind, even under RLIMIT_NOFILE=256.

hypercorn kept every connection whose client had hung up open for the whole keep-alive timeout
(75 s) in CLOSE-WAIT; 400 such clients ran a daemon limited to 256 descriptors out of them, and
its log filled with "Too many open files".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hive_harness import FAST, RBEE_HIVE, free_port

NOFILE = 256
CLIENTS = 400
#: Each client must be answered within this; an exhausted daemon never answers at all.
CLIENT_TIMEOUT = 3.0
HEALTH = b"GET /v1/health HTTP/1.1\r\nHost: hive\r\n\r\n"
_LIMITED_EXEC = (
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class LimitedDaemon:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.log_path = tmp / "daemon.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, **FAST, "HF_HUB_CACHE": str(tmp / "hub")}
        env.pop("LLORCH_API_TOKEN", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LIMITED_EXEC,
                str(RBEE_HIVE),
                "daemon",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--state-dir",
                str(tmp / "state"),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def close_wait(self) -> int:
        """Sockets of the daemon's port in CLOSE-WAIT (state 08 in /proc/net/tcp)."""
        port = f":{self.port:04X}"
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                for row in list(rows)[1:]:
                    local, state = row.split()[1], row.split()[3]
                    count += local.endswith(port) and state == "08"
        return count

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[LimitedDaemon]:
    hive = LimitedDaemon(tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert hive.proc.poll() is None, hive.output()
            try:
                with socket.create_connection(("127.0.0.1", hive.port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"daemon did not listen:\n{hive.output()}"
                time.sleep(0.05)
        yield hive
    finally:
        hive.stop()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)


def _read_answer(conn: socket.socket) -> bytes:
    data = b""
    while b"alive" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def answered_then_closed(port: int) -> bool:
    """A keep-alive client: request, read the answer, hang up (curl, aiohttp, reqwest)."""
    with _connect(port) as conn:
        conn.sendall(HEALTH)
        return _read_answer(conn).startswith(b"HTTP/1.1 200")


def half_closed(port: int) -> bool:
    """Request, then shut the write side at once, then read the answer."""
    with _connect(port) as conn:
        conn.sendall(HEALTH)
        conn.shutdown(socket.SHUT_WR)
        return _read_answer(conn).startswith(b"HTTP/1.1 200")


def connected_only(port: int) -> bool:
    """Connect and hang up without a request (a TCP health check, a port scan)."""
    with _connect(port):
        return True


def partial_body(port: int) -> bool:
    """Hang up halfway through a POST body."""
    with _connect(port) as conn:
        conn.sendall(
            b"POST /v1/workers/spawn HTTP/1.1\r\nHost: hive\r\nContent-Type: application/json"
            b'\r\nContent-Length: 200\r\n\r\n{"model_ref": "hf:'
        )
        return True


def request_unread(port: int) -> bool:
    """Send a request and hang up before the answer."""
    with _connect(port) as conn:
        conn.sendall(HEALTH)
        return True


KINDS: list[Callable[[int], bool]] = [
    answered_then_closed,
    half_closed,
    connected_only,
    partial_body,
    request_unread,
]


def _settled(read: Callable[[], int], target: int, timeout: float) -> int:
    """Poll ``read`` until it is at most ``target`` or ``timeout`` passes; the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def test_400_early_closing_clients_leave_no_descriptor_behind_under_rlimit_256(
    daemon: LimitedDaemon,
) -> None:
    for kind in KINDS:  # every code path once, so lazily opened files count in the baseline
        assert kind(daemon.port)
    time.sleep(0.5)
    baseline = _settled(daemon.fds, 0, 0)

    failures: list[str] = []
    for n in range(CLIENTS):
        kind = KINDS[n % len(KINDS)]
        try:
            ok = kind(daemon.port)
        except OSError as err:
            ok, why = False, repr(err)
        else:
            why = "no 200 answer"
        if not ok:
            failures.append(f"client {n} ({kind.__name__}): {why}")
            if len(failures) >= 5:
                break  # an exhausted daemon answers nobody: no need to wait for all 400
    assert failures == [], f"{len(failures)} clients failed: {failures}\n{daemon.output()[-3000:]}"

    # Every later request succeeds.
    assert all(answered_then_closed(daemon.port) for _ in range(50))
    # Descriptors return to the baseline well inside the 75 s keep-alive timeout.
    after = _settled(daemon.fds, baseline, timeout=10)
    assert after <= baseline, f"daemon holds {after} descriptors, {baseline} before the clients"
    assert _settled(daemon.close_wait, 0, timeout=5) == 0
    log = daemon.output()
    assert "Too many open files" not in log
    assert len(log) < 64 * 1024, f"the log grew to {len(log)} bytes:\n{log[-3000:]}"
