"""The queen is told about every ready launch once, also when the notifier lags (9.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from aiohttp import web

from rbee_hive_http_server._queen import QueenNotifier, QueenSettings
from rbee_hive_monitor import LifecycleEvent, WorkerReady
from rbee_hive_registry import Feed, Subscription, WorkerInfo, WorkerRegistry, WorkerState

pytestmark = pytest.mark.anyio


class Events:
    def __init__(self) -> None:
        self.feed: Feed[LifecycleEvent] = Feed()

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        return self.feed.subscribe(capacity)


class Queen:
    """Records the bodies POSTed to /v2/workers/ready."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""

    async def ready(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.json_response({"success": True})


@pytest.fixture
async def queen() -> AsyncIterator[Queen]:
    fake = Queen()
    app = web.Application()
    app.router.add_post("/v2/workers/ready", fake.ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def ready_worker(registry: WorkerRegistry, n: int) -> WorkerInfo:
    worker = WorkerInfo(
        id=f"worker-{n}",
        url=f"http://127.0.0.1:{9000 + n}",
        model_ref="hf:a/b",
        backend="cpu",
        device=0,
        state=WorkerState.LOADING,
        last_activity=datetime.now(UTC),
        port=9000 + n,
    )
    registry.register(worker)
    return registry.transition(worker.id, WorkerState.IDLE)


def ready_event(worker: WorkerInfo, launch: int = 1) -> WorkerReady:
    return WorkerReady(
        worker_id=worker.id,
        model_ref=worker.model_ref,
        backend=worker.backend,
        device=worker.device,
        engine="rbee",
        launch=launch,
        at=0.0,
        url=worker.url,
    )


async def wait_for_bodies(queen: Queen, count: int) -> None:
    with anyio.fail_after(5):
        while len(queen.bodies) < count:
            await anyio.sleep(0.01)
    await anyio.sleep(0.1)  # and no more than that


@pytest.mark.parametrize("capacity", [None, 1], ids=["keeps-up", "lags"])
async def test_every_ready_worker_is_announced_once_even_after_a_lag(
    queen: Queen, capacity: int | None
) -> None:
    events, registry = Events(), WorkerRegistry()
    notifier = QueenNotifier(events, registry, QueenSettings(queen.url), capacity=capacity)
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        for n in range(5):  # five workers become ready before the notifier can read
            events.feed.publish(ready_event(ready_worker(registry, n)))
        await wait_for_bodies(queen, 5)
        tg.cancel_scope.cancel()
    assert sorted(b["worker_id"] for b in queen.bodies) == [f"worker-{n}" for n in range(5)]
    assert queen.bodies[0].keys() == {"worker_id", "url", "model_ref", "backend"}
    assert notifier.sent == 5


async def test_a_restarted_worker_is_announced_again_and_ready_workers_at_start_once(
    queen: Queen,
) -> None:
    events, registry = Events(), WorkerRegistry()
    adopted = ready_worker(registry, 1)  # ready before the notifier started (adopted)
    notifier = QueenNotifier(events, registry, QueenSettings(queen.url))
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        events.feed.publish(ready_event(adopted, launch=1))  # the adoption event: known
        await wait_for_bodies(queen, 1)
        registry.update(adopted.id, restart_count=1)
        events.feed.publish(ready_event(adopted, launch=2))  # ready again after a restart
        await wait_for_bodies(queen, 2)
        tg.cancel_scope.cancel()
    assert [b["worker_id"] for b in queen.bodies] == [adopted.id, adopted.id]
