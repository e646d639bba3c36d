"""A small local Hugging Face hub for the integration tests: the listing API, ``resolve``
with the hub's headers (X-Repo-Commit, X-Linked-Size, X-Linked-Etag), Range requests, an
optional throttle, and a count of every byte range it sent."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs
from aiohttp import web

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
PIECE = 64 * 1024


@attrs.define(eq=False)
class Hub:
    url: str = ""
    files: dict[tuple[str, str], bytes] = attrs.Factory(dict)
    bytes_per_second: int | None = None
    broken_gets: bool = False  # every GET of a file answers 500 (HEAD still works)
    served: list[tuple[int, int]] = attrs.Factory(list)
    gets: int = 0

    def add(self, repo: str, name: str, content: bytes) -> str:
        self.files[(repo, name)] = content
        return hashlib.sha256(content).hexdigest()

    @property
    def bytes_served_twice(self) -> int:
        twice = reach = 0
        for start, end in sorted(self.served):
            twice += max(0, min(end, reach) - start)
            reach = max(reach, end)
        return twice

    async def listing(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        names = [name for (r, name) in self.files if r == repo]
        if not names:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"})
        return web.json_response(
            {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": n} for n in names]}
        )

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        repo = f"{request.match_info['org']}/{request.match_info['name']}"
        content = self.files.get((repo, request.match_info["file"]))
        if content is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound"})
        sha = hashlib.sha256(content).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "X-Linked-Size": str(len(content)),
            "X-Linked-Etag": f'"{sha}"',
            "ETag": f'"{sha}"',
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(content))
            return web.Response(status=200, headers=headers)
        self.gets += 1
        if self.broken_gets:
            raise web.HTTPInternalServerError(text="the CDN is down")
        start = 0
        status = 200
        range_header = request.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start = int(range_header[6:].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        headers["Content-Length"] = str(len(content) - start)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        position = start
        try:
            while position < len(content):
                piece = content[position : position + PIECE]
                await response.write(piece)
                self.served.append((position, position + len(piece)))
                position += len(piece)
                if self.bytes_per_second:
                    await anyio.sleep(len(piece) / self.bytes_per_second)
        except (ConnectionResetError, RuntimeError):
            return response
        await response.write_eof()
        return response


@asynccontextmanager
async def running_hub(port: int) -> AsyncIterator[Hub]:
    hub = Hub(url=f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_get("/api/models/{org}/{name}/revision/{revision}", hub.listing)
    app.router.add_route("*", "/{org}/{name}/resolve/{revision}/{file}", hub.resolve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield hub
    finally:
        await runner.cleanup()
