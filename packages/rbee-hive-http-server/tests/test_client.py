"""``HiveClient`` against the real app (through a loopback aiohttp bridge), a stub SSE stream,
and with the server side made unimportable."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from rbee_hive_http_server import (
    Downloaded,
    Downloading,
    DownloadStarted,
    Health,
    HiveClient,
    HiveClientError,
    SpawnResponse,
    StopResult,
    WorkerLogs,
)
from rbee_hive_registry import WorkerInfo, WorkerState

if TYPE_CHECKING:
    from conftest import Hive

pytestmark = pytest.mark.anyio

BARE_CLIENT_CHECK = Path(__file__).resolve().parents[3] / "scripts" / "check_bare_client.py"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def address(hive: Hive) -> AsyncIterator[str]:
    """A loopback address whose requests reach the hive's ASGI app (aiohttp -> httpx)."""

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        answer = await hive.client.request(
            request.method, request.path_qs, content=await request.read(), headers=headers
        )
        content_type = answer.headers.get("content-type", "application/json").split(";")[0]
        return web.Response(
            status=answer.status_code, body=answer.content, content_type=content_type
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    async for served in _serve(app):
        yield served


async def test_the_client_answers_with_wire_objects(hive: Hive, address: str) -> None:
    async with HiveClient(address) as client:
        assert await client.health() == Health(version="9.9.9")
        spawned = await client.spawn(hive.model_ref)
        assert isinstance(spawned, SpawnResponse)
        assert spawned.state is WorkerState.LOADING
        workers = await client.list_workers()
        assert [type(w) for w in workers] == [WorkerInfo]
        assert workers[0].id == spawned.worker_id
        assert (await client.worker(spawned.worker_id)).url == spawned.url
        logs = await client.worker_logs(spawned.worker_id, lines=5)
        assert isinstance(logs, WorkerLogs)
        assert logs.worker_id == spawned.worker_id
        stopped = await client.stop_worker(spawned.worker_id)
        assert isinstance(stopped, StopResult)
        assert stopped.outcome in ("graceful", "forced")
        assert await client.list_workers() == []


async def test_a_cached_model_download_answers_at_once(hive: Hive, address: str) -> None:
    async with HiveClient(address) as client:
        started = await client.download(hive.model_ref)
    assert started == DownloadStarted(download_id="cached", local_path=str(hive.model))


async def test_an_error_answer_raises_with_code_status_and_details(
    hive: Hive, address: str
) -> None:
    async with HiveClient(address) as client:
        with pytest.raises(HiveClientError) as missing:
            await client.worker("worker-nope")
        with pytest.raises(HiveClientError) as invalid:
            await client.spawn(hive.model_ref, device=-1)
    assert (missing.value.status, missing.value.code) == (404, "WORKER_NOT_FOUND")
    assert "worker-nope" in str(missing.value)
    assert (invalid.value.status, invalid.value.code) == (422, "INVALID_FIELD")
    assert invalid.value.details == {"fields": ["device"]}


async def test_an_unreachable_hive_names_the_address() -> None:
    async with HiveClient("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(HiveClientError) as err:
            await client.health()
    assert err.value.status is None
    assert "127.0.0.1:1" in str(err.value)


async def test_progress_frames_become_typed_events() -> None:
    async def progress(request: web.Request) -> web.StreamResponse:
        assert request.query["id"] == "d-1"
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for frame in (
            b": keep-alive\n\n",
            b'data: {"stage": "downloading", "bytes_downloaded": 5, "bytes_total": 10, '
            b'"speed_mbps": 1.25, "eta_seconds": null}\n\n',
            b'data: {"stage": "complete", "local_path": "/m/x.gguf"}\n\n',
            b"data: [DONE]\n\n",
        ):
            await response.write(frame)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models/download/progress", progress)
    async for served in _serve(app):
        async with HiveClient(served) as client:
            events = [event async for event in client.progress("d-1")]
    assert events == [
        Downloading(bytes_downloaded=5, bytes_total=10, speed_mbps=1.25, eta_seconds=None),
        Downloaded(local_path="/m/x.gguf"),
    ]


async def test_an_answer_the_client_cannot_read_says_so() -> None:
    async def wrong(request: web.Request) -> web.Response:
        return web.json_response({"workers": [{"id": 3}]})

    app = web.Application()
    app.router.add_get("/v1/workers/list", wrong)
    async for served in _serve(app):
        async with HiveClient(served) as client:
            with pytest.raises(HiveClientError) as err:
                await client.list_workers()
    assert "cannot read" in str(err.value)
    assert "same version" in str(err.value)


def test_the_client_works_without_starlette_monitor_or_provisioner() -> None:
    # The check that scripts/check-wheels runs against the bare wheel, here with the server
    # side made unimportable in a fresh interpreter.
    result = subprocess.run(
        [sys.executable, str(BARE_CLIENT_CHECK), "--block-server-side"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok HiveClient works" in result.stdout
