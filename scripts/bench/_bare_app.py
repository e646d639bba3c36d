"""The load benchmark's baseline: a bare Starlette app under hypercorn that answers the same
bytes the hive answered (captured just before), with no middleware and no live state.

    python _bare_app.py PORT CAPTURE_DIR   # files list.json, health.json, metrics.txt
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(capture: Path) -> Starlette:
    workers = (capture / "list.json").read_bytes()
    health = (capture / "health.json").read_bytes()
    metrics = (capture / "metrics.txt").read_bytes()

    async def list_workers(request: Request) -> Response:
        return Response(workers, media_type="application/json")

    async def alive(request: Request) -> Response:
        return Response(health, media_type="application/json")

    async def scrape(request: Request) -> Response:
        return Response(metrics, media_type="text/plain; version=0.0.4; charset=utf-8")

    return Starlette(
        routes=[
            Route("/v1/workers/list", list_workers),
            Route("/v1/health", alive),
            Route("/metrics", scrape),
        ]
    )


def main() -> None:
    port, capture = int(sys.argv[1]), Path(sys.argv[2])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    print("READY", flush=True)
    asyncio.run(serve(build(capture), config))  # type: ignore[arg-type]  # hypercorn's app union


if __name__ == "__main__":
    main()
