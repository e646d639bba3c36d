"""Model routes: download with SSE progress, catalog list, removal, verification."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from rbee_hive_http_server._body import parse_json_body
from rbee_hive_http_server._context import context_of
from rbee_hive_http_server._wire import (
    Download,
    Downloaded,
    DownloadError,
    Downloading,
    DownloadList,
    DownloadStarted,
    Model,
    ModelList,
    ModelRequest,
    ProgressEvent,
    Removed,
    Verification,
    to_json,
)
from rbee_hive_http_server.exceptions import ApiError
from rbee_hive_provisioner import (
    CatalogEntry,
    DownloadComplete,
    DownloadEvent,
    DownloadProgress,
    DownloadStatus,
    ModelRef,
)

KEEPALIVE_SECONDS = 10.0


def model_of(entry: CatalogEntry) -> Model:
    """One catalog row on the wire."""
    return Model(
        model_ref=entry.reference,
        provider=entry.provider,
        repo=entry.repo,
        revision=entry.revision,
        commit=entry.commit,
        file=entry.file,
        local_path=str(entry.local_path),
        size_bytes=entry.size,
        sha256=entry.sha256,
        downloaded_at=entry.downloaded_at,
    )


def event_of(event: DownloadEvent) -> ProgressEvent:
    """One progress event on the wire (rates rounded for people)."""
    if isinstance(event, DownloadProgress):
        eta = event.eta_seconds
        return Downloading(
            bytes_downloaded=event.bytes_downloaded,
            bytes_total=event.bytes_total,
            speed_mbps=round(event.speed_mbps, 3),
            eta_seconds=None if eta is None else round(eta, 1),
        )
    if isinstance(event, DownloadComplete):
        return Downloaded(local_path=str(event.local_path))
    return DownloadError(code=event.code, message=event.message)


def download_of(status: DownloadStatus) -> Download:
    """One active or recently finished download on the wire."""
    return Download(
        download_id=status.download_id,
        model_ref=str(status.ref),
        started_at=status.started_at,
        finished_at=status.finished_at,
        state=event_of(status.state),
    )


async def start_download(request: Request) -> JSONResponse:
    """Start (or join) a download; ``download_id`` is "cached" when the model is here."""
    ctx = context_of(request)
    body = await parse_json_body(request, ModelRequest)
    ref = ModelRef.parse(body.model_ref)
    ticket = await ctx.provisioner.start_download(ref)
    if ctx.audit is not None:
        ctx.audit.record(
            "model.download",
            outcome="cached" if ticket.cached else "started",
            details={"model_ref": str(ref), "download_id": ticket.download_id},
        )
    local = None if ticket.cached is None else str(ticket.cached.path)
    return JSONResponse(to_json(DownloadStarted(download_id=ticket.download_id, local_path=local)))


async def progress(request: Request) -> StreamingResponse:
    """SSE: the current state first, then every change, then ``data: [DONE]``."""
    ctx = context_of(request)
    download_id = request.query_params.get("id", "")
    if not download_id:
        raise ApiError(
            "INVALID_FIELD", "give the download as ?id=<download_id>", details={"fields": ["id"]}
        )
    subscription = ctx.provisioner.subscribe(download_id)

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
            yield b"data: " + json.dumps(to_json(event_of(event))).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def list_models(request: Request) -> JSONResponse:
    """The catalog."""
    entries = await context_of(request).provisioner.list_models()
    return JSONResponse(to_json(ModelList(models=[model_of(e) for e in entries])))


async def list_downloads(request: Request) -> JSONResponse:
    """Active downloads and the ones that ended in the last minutes."""
    downloads = context_of(request).provisioner.downloads()
    return JSONResponse(to_json(DownloadList(downloads=[download_of(d) for d in downloads])))


async def remove_model(request: Request) -> JSONResponse:
    """Remove a model from the catalog (and its blob when nothing else links to it);
    refused while a worker uses it (the pool's rule; it audits the removal)."""
    ctx = context_of(request)
    text = request.query_params.get("model_ref", "")
    if not text:
        raise ApiError(
            "INVALID_FIELD",
            "give the model as ?model_ref=hf:ORG/REPO[:FILE]",
            details={"fields": ["model_ref"]},
        )
    entry = await ctx.pool.remove_model(text)
    return JSONResponse(to_json(Removed(removed=model_of(entry))))


async def verify_model(request: Request) -> JSONResponse:
    """Re-hash a catalogued model against its recorded SHA-256."""
    ctx = context_of(request)
    body = await parse_json_body(request, ModelRequest)
    result = await ctx.provisioner.verify(ModelRef.parse(body.model_ref))
    verification = Verification(
        model_ref=result.reference,
        local_path=str(result.path),
        ok=result.ok,
        expected_sha256=result.expected_sha256,
        actual_sha256=result.actual_sha256,
        problem=result.problem,
    )
    return JSONResponse(to_json(verification))


ROUTES = [
    Route("/v1/models/download", start_download, methods=["POST"]),
    Route("/v1/models/download/progress", progress, methods=["GET"]),
    Route("/v1/models/downloads", list_downloads, methods=["GET"]),
    Route("/v1/models/verify", verify_model, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models", remove_model, methods=["DELETE"]),
]
