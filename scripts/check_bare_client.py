"""Use ``HiveClient`` where only the bare ``rbee-hive-http-server`` wheel is installed.

Run by ``scripts/check-wheels`` with the python of a venv that holds that wheel alone (no
``[server]`` extra): it asserts the server's libraries are absent, serves a stub hive with
aiohttp, and reads typed answers and a typed error through ``HiveClient``.

``--block-server-side`` (used by http-server's tests in a full environment) makes those
libraries unimportable instead of asserting they are not installed.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from aiohttp import web

ABSENT = ("starlette", "rbee_hive_monitor", "rbee_hive_provisioner", "rbee_hive_resources")

WORKER = {
    "id": "worker-1",
    "url": "http://127.0.0.1:9300",
    "model_ref": "hf:org/repo:model.gguf",
    "backend": "cpu",
    "device": 0,
    "state": "idle",
    "last_activity": "2026-12-02T21:00:00.000000Z",
    "port": 9300,
}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname.split(".", maxsplit=1)[0] in ABSENT:
            raise ImportError(f"{fullname} is blocked: the client must not need it")


async def main(block: bool) -> int:
    if block:
        sys.meta_path.insert(0, _Blocker())
    else:
        present = [name for name in ABSENT if importlib.util.find_spec(name) is not None]
        if present:
            print(f"!! the bare wheel pulled in {present}", file=sys.stderr)
            return 1
    from rbee_hive_http_server import HiveClient, HiveClientError, SpawnResponse
    from rbee_hive_registry import WorkerInfo, WorkerState

    async def workers(request: web.Request) -> web.Response:
        return web.json_response({"workers": [WORKER]})

    async def spawn(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"worker_id": "worker-2", "url": "http://127.0.0.1:9301", "state": "loading"}
            if body["model_ref"].startswith("hf:")
            else None
        )

    async def missing(request: web.Request) -> web.Response:
        error = {"code": "WORKER_NOT_FOUND", "message": "worker 'x' is not registered"}
        return web.json_response({"error": error}, status=404)

    app = web.Application()
    app.router.add_get("/v1/workers/list", workers)
    app.router.add_post("/v1/workers/spawn", spawn)
    app.router.add_get("/v1/workers/{worker_id}", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with HiveClient(f"127.0.0.1:{port}") as hive:
            listed = await hive.list_workers()
            assert isinstance(listed[0], WorkerInfo), listed
            assert listed[0].state is WorkerState.IDLE, listed
            spawned = await hive.spawn("hf:org/repo")
            assert isinstance(spawned, SpawnResponse), spawned
            refusal: HiveClientError | None = None
            try:
                await hive.worker("x")
            except HiveClientError as err:
                refusal = err
            assert refusal is not None, "a 404 did not raise HiveClientError"
            assert (refusal.status, refusal.code) == (404, "WORKER_NOT_FOUND"), refusal
    finally:
        await runner.cleanup()
    loaded = sorted(name for name in ABSENT if name in sys.modules)
    assert not loaded, f"the client imported {loaded}"
    print("ok HiveClient works from the bare rbee-hive-http-server wheel (no server extra)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(block="--block-server-side" in sys.argv[1:])))
