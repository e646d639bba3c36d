"""A minimal Hugging Face hub for benchmarks: one repository, one file, Range, byte counts.

Run as ``python _hub_server.py FILE REPO NAME SHA256 [--reset-first-get-at 0.4]``; it prints
``READY <url>`` once listening on a free loopback port. ``GET /stats`` answers the byte ranges
it served (JSON list of [start, end)) so the caller can count bytes fetched twice.
Faulty first GET: the connection closes after that fraction of the file.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PIECE = 1 << 20


def build_app(
    path: Path, repo: str, name: str, sha256: str, reset_at: float | None, cdn: list[str]
) -> web.Application:
    """The app; ``cdn[0]`` is filled in with the CDN origin once it listens."""
    size = path.stat().st_size
    served: list[tuple[int, int]] = []
    gets = [0]

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"sha": COMMIT, "siblings": [{"rfilename": name}]})

    async def resolve(request: web.Request) -> web.StreamResponse:
        headers = {
            "X-Repo-Commit": COMMIT,
            "X-Linked-Size": str(size),
            "X-Linked-Etag": f'"{sha256}"',
            "ETag": f'"{sha256}"',
            "Location": f"{cdn[0]}/cdn/{name}",
        }
        # Another origin, as the real hub's CDN: the HEAD stops here, the GET follows.
        return web.Response(status=302, headers=headers)

    async def serve_file(request: web.Request) -> web.StreamResponse:
        start = 0
        range_header = request.headers.get("Range")
        if range_header:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(size), "ETag": f'"{sha256}"'})
        gets[0] += 1
        if reset_at is not None and gets[0] == 1:
            return await faulty(request, start)
        served.append((start, size))  # FileResponse (sendfile) sends the whole range
        return web.FileResponse(path, chunk_size=PIECE)

    async def faulty(request: web.Request, start: int) -> web.StreamResponse:
        assert reset_at is not None
        cut = int(size * reset_at)
        response = web.StreamResponse(
            status=206 if start else 200,
            headers={"Content-Length": str(size - start), "Accept-Ranges": "bytes"},
        )
        await response.prepare(request)
        with path.open("rb") as f:
            f.seek(start)
            pos = start
            while pos < cut:
                data = f.read(min(PIECE, cut - pos))
                await response.write(data)
                served.append((pos, pos + len(data)))
                pos += len(data)
        if request.transport is not None:
            request.transport.close()
        return response

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"served": served, "gets": gets[0]})

    app = web.Application()
    app.router.add_get(f"/api/models/{repo}/revision/{{revision}}", listing)
    app.router.add_route("*", f"/{repo}/resolve/{{revision}}/{{file:.+}}", resolve)
    app.router.add_route("*", "/cdn/{file:.+}", serve_file)
    app.router.add_get("/stats", stats)
    return app


async def serve(args: argparse.Namespace) -> None:
    cdn = [""]
    app = build_app(
        Path(args.file), args.repo, args.name, args.sha256, args.reset_first_get_at, cdn
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for _ in ("hub", "cdn"):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    (hub_host, hub_port), (cdn_host, cdn_port) = (a[:2] for a in runner.addresses)
    cdn[0] = f"http://{cdn_host}:{cdn_port}"
    print(f"READY http://{hub_host}:{hub_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("repo")
    parser.add_argument("name")
    parser.add_argument("sha256")
    parser.add_argument("--reset-first-get-at", type=float, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
