"""queen-rbee is told about ready workers; the real worker's heartbeat path is served."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from aiohttp import web

from hive_harness import DaemonFactory, free_port

pytestmark = pytest.mark.anyio


async def test_the_queen_hears_of_each_ready_worker_with_the_token(
    start_daemon: DaemonFactory,
) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []
    arrived = anyio.Event()

    async def ready(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get("Authorization")))
        arrived.set()
        return web.json_response({"success": True, "message": "ok"})

    app = web.Application()
    app.router.add_post("/v2/workers/ready", ready)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        hive = start_daemon(
            {
                "QUEEN_CALLBACK_URL": f"http://127.0.0.1:{port}",
                "LLORCH_API_TOKEN": "queen-tok-4f9a7c2e1b3d5f6a8c0e2b4d6f8a",
            }
        )
        status, body = await hive.call(
            "POST",
            "/v1/workers/spawn",
            {"model_ref": hive.model_ref, "backend": "cpu", "device": 0, "model_path": ""},
            headers={"Authorization": "Bearer queen-tok-4f9a7c2e1b3d5f6a8c0e2b4d6f8a"},
        )
        assert status == 200, body
        with anyio.fail_after(20):
            await arrived.wait()
    finally:
        await runner.cleanup()
    notice, auth = received[0]
    assert notice == {
        "worker_id": body["worker_id"],
        "url": body["url"],  # the hive's URL for the worker, not the worker's localhost one
        "model_ref": hive.model_ref,
        "backend": "cpu",
    }
    assert auth == "Bearer queen-tok-4f9a7c2e1b3d5f6a8c0e2b4d6f8a"


async def test_heartbeats_from_the_unmodified_worker_are_recorded(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"FAKE_WORKER_HEARTBEAT_S": "0.2"})
    _, body = await hive.spawn()
    worker = await hive.wait_for(
        body["worker_id"], lambda w: w["last_heartbeat"] is not None, what="a heartbeat"
    )
    first = worker["last_heartbeat"]
    await hive.wait_for(
        body["worker_id"], lambda w: w["last_heartbeat"] != first, what="a second heartbeat"
    )


async def test_a_heartbeat_for_an_unknown_worker_is_404(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    status, body = await hive.call(
        "POST",
        "/v1/heartbeat",
        {
            "worker_id": "worker-nope",
            "timestamp": "2026-01-01T00:00:00Z",
            "health_status": "healthy",
        },
    )
    assert status == 404
    assert body["error"]["code"] == "WORKER_NOT_FOUND"
