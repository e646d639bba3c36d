"""Fixtures: a hive in miniature (registry + supervisor + a callback receiver) and the fake
worker (``fake_worker.py``, a stdlib-only stand-in for llm-worker-rbee)."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from rbee_hive_monitor import (
    EngineSpec,
    MonitorError,
    Supervisor,
    SupervisorSettings,
    WorkerHttp,
    WorkerSpec,
    rbee_engine,
)
from rbee_hive_registry import FeedLagged, WorkerInfo, WorkerRegistry, WorkerState
from rbee_hive_restart import Backoff, BreakerSettings

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
PYTHON = (sys.executable, "-S")  # the fake worker needs the stdlib only; skip site for speed


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fake_engine(name: str = "rbee") -> EngineSpec:
    """The rbee engine, with the fake worker as its binary."""
    return rbee_engine(FAKE_WORKER, launcher=PYTHON, name=name)


class CallbackReceiver:
    """Stands in for the hive's HTTP layer: issues per-launch secret callback URLs and turns
    the worker's ready callback and heartbeats into supervisor calls."""

    def __init__(self) -> None:
        self.port = 0
        self.supervisor: Supervisor | None = None
        self.secrets: dict[str, str] = {}
        self.issued: list[str] = []
        self.revoked: list[str] = []
        self.ready_bodies: list[bytes] = []
        self.heartbeats: list[str] = []
        self.authorization_seen = False
        self.refuse_ready = False
        self.refuse_heartbeats = False

    # WorkerCallbacks
    def issue(self, worker_id: str) -> str:
        self.secrets[worker_id] = secret = secrets.token_urlsafe(16)
        url = f"http://127.0.0.1:{self.port}/cb/{worker_id}/{secret}"
        self.issued.append(url)
        return url

    def revoke(self, worker_id: str) -> None:
        self.secrets.pop(worker_id, None)
        self.revoked.append(worker_id)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        # A worker killed mid-request (teardown, a crash test) just hangs up: not an error.
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await self._answer(stream)

    async def _answer(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += await stream.receive()
            self.authorization_seen |= "authorization" in headers
            status = self._route(lines[0].split(" ")[1], body)
            await stream.send(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )

    def _route(self, path: str, body: bytes) -> int:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "cb" or self.secrets.get(parts[1]) != parts[2]:
            return 401
        worker_id, rest = parts[1], parts[3:]
        assert self.supervisor is not None
        try:
            if rest == ["v1", "heartbeat"]:
                if self.refuse_heartbeats:
                    return 503
                self.supervisor.record_heartbeat(worker_id)
                self.heartbeats.append(worker_id)
                return 200
            if rest:
                return 404
            if self.refuse_ready:
                return 500
            self.ready_bodies.append(body)
            self.supervisor.mark_ready(worker_id)
        except MonitorError:
            return 409
        return 200


class Hive:
    """A registry, a supervisor on the fake worker, and helpers to follow what happens."""

    def __init__(
        self,
        registry: WorkerRegistry,
        supervisor: Supervisor,
        callbacks: CallbackReceiver,
        tmp: Path,
    ) -> None:
        self.registry = registry
        self.supervisor = supervisor
        self.callbacks = callbacks
        self.tmp = tmp
        self.model = tmp / "model.gguf"
        self.model.write_bytes(b"GGUF")

    def spec(self, mode: str = "normal", engine: str = "rbee", **env: str) -> WorkerSpec:
        """A spec for the fake worker in ``mode``; ``env`` adds FAKE_WORKER_* variables."""
        extra = {
            "FAKE_WORKER_MODE": mode,
            **{f"FAKE_WORKER_{k.upper()}": v for k, v in env.items()},
        }
        return WorkerSpec(model_ref="hf:test/tiny:model.gguf", engine=engine, env=extra)

    async def spawn(self, mode: str = "normal", **env: str) -> WorkerInfo:
        return await self.supervisor.spawn(self.spec(mode, **env), self.model)

    async def wait_for(
        self, worker_id: str, predicate: Callable[[WorkerInfo], bool], timeout: float = 10.0
    ) -> WorkerInfo:
        """The first record of the worker (current or from the change feed) that matches."""
        with self.registry.subscribe() as feed, anyio.fail_after(timeout):
            current = self.registry.get(worker_id)
            if current is not None and predicate(current):
                return current
            async for item in feed:
                record = (
                    self.registry.get(worker_id) if isinstance(item, FeedLagged) else item.worker
                )
                if record is not None and record.id == worker_id and predicate(record):
                    return record
        raise AssertionError("the change feed ended")  # pragma: no cover

    async def wait_state(
        self, worker_id: str, *states: WorkerState, timeout: float = 10.0
    ) -> WorkerInfo:
        return await self.wait_for(worker_id, lambda w: w.state in states, timeout)

    async def spawn_ready(self, mode: str = "normal", **env: str) -> WorkerInfo:
        info = await self.spawn(mode, **env)
        return await self.wait_for(
            info.id, lambda w: w.state is WorkerState.IDLE and w.pid is not None
        )

    async def serving(self, info: WorkerInfo) -> None:
        """Wait until the worker accepts connections (it reports ready before it binds)."""
        with anyio.fail_after(5):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", info.port)
                except OSError:
                    await anyio.sleep(0.01)
                    continue
                await stream.aclose()
                return

    @staticmethod
    def processes_with(marker: str) -> list[int]:
        """PIDs of live (non-zombie) processes whose command line contains ``marker``."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if marker in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry))
        return found

    @staticmethod
    def assert_gone(pid: int) -> None:
        """The process does not exist any more (it was reaped, not left a zombie)."""
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


OpenHive = Callable[..., AbstractAsyncContextManager[Hive]]


def fast_settings(tmp: Path, **overrides: Any) -> SupervisorSettings:
    """Fast settings on a random port range, so parallel test runs rarely collide."""
    base = random.randrange(20000, 30000, 100)
    values: dict[str, Any] = {
        "log_dir": tmp / "workers",
        "port_range": (base, base + 99),
        "probe_interval": 0.5,
        "probe_timeout": 1.0,
        "early_exit_grace": 0.3,
        "stop_timeout": 5.0,
        "backoff": Backoff(base=0.05, factor=2.0, cap=0.2, jitter=0.0),
        "breaker": BreakerSettings(threshold=5, window=60.0),
    }
    values.update(overrides)
    return SupervisorSettings(**values)


@pytest.fixture
def fake_worker_argv() -> tuple[str, ...]:
    """How to run the fake worker: prepend this to its seven flags."""
    return (*PYTHON, str(FAKE_WORKER))


@pytest.fixture
def open_hive(tmp_path: Path) -> OpenHive:
    """``async with open_hive(**settings) as hive:`` runs a supervisor for the block."""

    @contextlib.asynccontextmanager
    async def factory(
        *,
        engines: tuple[EngineSpec, ...] | None = None,
        http: WorkerHttp | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Hive]:
        registry = WorkerRegistry()
        callbacks = CallbackReceiver()
        settings = fast_settings(tmp_path, **overrides)
        async with anyio.create_task_group() as tg:
            await tg.start(callbacks.serve)
            async with Supervisor.open(
                registry,
                settings,
                engines or (fake_engine(),),
                callbacks=callbacks,
                random=lambda: 0.5,
                http=http,
            ) as supervisor:
                callbacks.supervisor = supervisor
                yield Hive(registry, supervisor, callbacks, tmp_path)
            tg.cancel_scope.cancel()

    return factory
