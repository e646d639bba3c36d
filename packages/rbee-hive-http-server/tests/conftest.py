"""An app over a real registry, supervisor and provisioner, driven in-process through
httpx's ASGI transport. Workers are the monitor's fake worker run in llm-worker-rbee's test
mode (no callback), so tests play the worker's callbacks themselves."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
import httpx
import pytest

from rbee_hive_http_middleware import CallbackSecrets, Token
from rbee_hive_http_server.app import CallbackUrls, HiveContext, create_app
from rbee_hive_monitor import Supervisor, SupervisorSettings, WorkerPool, rbee_engine
from rbee_hive_provisioner import Provisioner, ProvisionerSettings
from rbee_hive_registry import WorkerRegistry
from rbee_hive_resources import Admission, FakeNvml, HostResources

FAKE_WORKER = Path(__file__).resolve().parents[2] / "rbee-hive-monitor" / "tests" / "fake_worker.py"
TOKEN = "test-token-6f1c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@attrs.define
class Hive:
    client: httpx.AsyncClient
    registry: WorkerRegistry
    secrets: CallbackSecrets
    supervisor: Supervisor
    model: Path

    @property
    def model_ref(self) -> str:
        return f"file:{self.model}"

    async def spawn(self, **fields: Any) -> httpx.Response:
        body = {"model_ref": self.model_ref, "backend": "cpu", "device": 0, "model_path": ""}
        body.update(fields)
        return await self.client.post("/v1/workers/spawn", json=body)


async def _hive(
    tmp_path: Path, token: Token | None, activity: Literal["none", "heartbeat"] = "none"
) -> AsyncIterator[Hive]:
    assert FAKE_WORKER.exists(), FAKE_WORKER
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    registry = WorkerRegistry()
    secrets = CallbackSecrets()
    # localhost:9999 puts llm-worker-rbee (and the fake) into test mode: no callback.
    callbacks = CallbackUrls("http://localhost:9999", secrets)
    # Worker ports from a random block below the ephemeral range, not the default
    # 8081-9000, so two test runs on one machine rarely hand out the same ports.
    first_port = random.randrange(10_000, 32_700, 100)
    settings = SupervisorSettings(
        log_dir=tmp_path / "workers", stop_timeout=2.0, port_range=(first_port, first_port + 99)
    )
    engine = attrs.evolve(
        rbee_engine(FAKE_WORKER, launcher=(sys.executable, "-S")), activity=activity
    )
    provisioner_settings = ProvisionerSettings(
        state_dir=tmp_path / "state", cache_dir=tmp_path / "hub"
    )
    async with (
        Provisioner.open(provisioner_settings) as provisioner,
        Supervisor.open(registry, settings, [engine], callbacks=callbacks) as supervisor,
        anyio.create_task_group() as tg,
    ):
        # Real admission of this machine's RAM (a 64-byte model always fits), no GPU.
        host = HostResources(nvml=FakeNvml(unavailable="no GPU in these tests"))
        pool = WorkerPool(registry, supervisor, provisioner, Admission(host))
        await tg.start(pool.run)
        context = HiveContext(
            version="9.9.9",
            registry=registry,
            supervisor=supervisor,
            provisioner=provisioner,
            pool=pool,
            engines=["rbee"],
        )
        app = create_app(context, token=token, callbacks=secrets)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        headers = {} if token is None else {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hive", headers=headers
        ) as client:
            yield Hive(client, registry, secrets, supervisor, model)
        await supervisor.stop_all(5)
        tg.cancel_scope.cancel()


@pytest.fixture
async def hive(tmp_path: Path) -> AsyncIterator[Hive]:
    async for h in _hive(tmp_path, None):
        yield h


@pytest.fixture
async def guarded_hive(tmp_path: Path) -> AsyncIterator[Hive]:
    async for h in _hive(tmp_path, Token(TOKEN)):
        yield h


@pytest.fixture
async def heartbeat_hive(tmp_path: Path) -> AsyncIterator[Hive]:
    """Workers whose heartbeats say whether they are busy (engine ``activity="heartbeat"``)."""
    async for h in _hive(tmp_path, None, activity="heartbeat"):
        yield h
