"""Model routes: download with SSE progress, catalog list, removal, verification."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from rbee_hive_http_server._body import parse_json_body
from rbee_hive_http_server._context import context_of
from rbee_hive_http_server._workers import translate
from rbee_hive_http_server.exceptions import ApiError
from rbee_hive_provisioner import (
    CatalogEntry,
    DownloadStatus,
    ModelRef,
    to_wire,
)
from rbee_hive_registry import format_timestamp

KEEPALIVE_SECONDS = 10.0


@attrs.frozen
class ModelBody:
    """``{"model_ref": ...}``."""

    model_ref: str


def _parse_ref(text: str) -> ModelRef:
    try:
        return ModelRef.parse(text)
    except Exception as err:
        raise translate(err) from err


def entry_to_json(entry: CatalogEntry) -> dict[str, Any]:
    """One catalog row."""
    return {
        "model_ref": entry.reference,
        "provider": entry.provider,
        "repo": entry.repo,
        "revision": entry.revision,
        "commit": entry.commit,
        "file": entry.file,
        "local_path": str(entry.local_path),
        "size_bytes": entry.size,
        "sha256": entry.sha256,
        "downloaded_at": format_timestamp(entry.downloaded_at),
    }


def download_to_json(status: DownloadStatus) -> dict[str, Any]:
    """One active or recently finished download."""
    return {
        "download_id": status.download_id,
        "model_ref": str(status.ref),
        "started_at": format_timestamp(status.started_at),
        "finished_at": None if status.finished_at is None else format_timestamp(status.finished_at),
        **to_wire(status.state),
    }


async def start_download(request: Request) -> JSONResponse:
    """Start (or join) a download; ``download_id`` is "cached" when the model is here."""
    ctx = context_of(request)
    body = await parse_json_body(request, ModelBody)
    ref = _parse_ref(body.model_ref)
    try:
        ticket = await ctx.provisioner.start_download(ref)
    except Exception as err:
        raise translate(err) from err
    if ctx.audit is not None:
        ctx.audit.record(
            "model.download",
            outcome="cached" if ticket.cached else "started",
            details={"model_ref": str(ref), "download_id": ticket.download_id},
        )
    local = None if ticket.cached is None else str(ticket.cached.path)
    return JSONResponse({"download_id": ticket.download_id, "local_path": local})


async def progress(request: Request) -> StreamingResponse:
    """SSE: the current state first, then every change, then ``data: [DONE]``."""
    ctx = context_of(request)
    download_id = request.query_params.get("id", "")
    if not download_id:
        raise ApiError(422, "INVALID_FIELD", "give the download as ?id=<download_id>")
    try:
        subscription = ctx.provisioner.subscribe(download_id)
    except Exception as err:
        raise translate(err) from err

    async def frames() -> AsyncIterator[bytes]:
        events = aiter(subscription)
        while True:
            event = None
            with anyio.move_on_after(KEEPALIVE_SECONDS):
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
            if event is None:
                yield b": keep-alive\n\n"
                continue
            yield b"data: " + json.dumps(to_wire(event)).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def list_models(request: Request) -> JSONResponse:
    """The catalog."""
    entries = await context_of(request).provisioner.list_models()
    return JSONResponse({"models": [entry_to_json(e) for e in entries]})


async def list_downloads(request: Request) -> JSONResponse:
    """Active downloads and the ones that ended in the last minutes."""
    downloads = context_of(request).provisioner.downloads()
    return JSONResponse({"downloads": [download_to_json(d) for d in downloads]})


async def remove_model(request: Request) -> JSONResponse:
    """Remove a model from the catalog (and its blob when nothing else links to it);
    refused while a worker uses it (the pool's rule; it audits the removal)."""
    ctx = context_of(request)
    text = request.query_params.get("model_ref", "")
    if not text:
        raise ApiError(422, "INVALID_FIELD", "give the model as ?model_ref=hf:ORG/REPO[:FILE]")
    try:
        entry = await ctx.pool.remove_model(text)
    except Exception as err:
        raise translate(err) from err
    return JSONResponse({"removed": entry_to_json(entry)})


async def verify_model(request: Request) -> JSONResponse:
    """Re-hash a catalogued model against its recorded SHA-256."""
    ctx = context_of(request)
    body = await parse_json_body(request, ModelBody)
    try:
        result = await ctx.provisioner.verify(_parse_ref(body.model_ref))
    except Exception as err:
        raise translate(err) from err
    return JSONResponse(
        {
            "model_ref": result.reference,
            "local_path": str(result.path),
            "ok": result.ok,
            "expected_sha256": result.expected_sha256,
            "actual_sha256": result.actual_sha256,
            "problem": result.problem,
        }
    )


ROUTES = [
    Route("/v1/models/download", start_download, methods=["POST"]),
    Route("/v1/models/download/progress", progress, methods=["GET"]),
    Route("/v1/models/downloads", list_downloads, methods=["GET"]),
    Route("/v1/models/verify", verify_model, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models", remove_model, methods=["DELETE"]),
]
