"""Worker routes: spawn, the worker's callbacks, list, show, logs, stop."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rbee_hive_http_middleware import callback_worker_id
from rbee_hive_http_server._body import WORKER_ID, check_identifier, parse_json_body
from rbee_hive_http_server._context import context_of
from rbee_hive_http_server._wire import (
    GPU_UUID_PATTERN,
    MAX_DEVICE_INDEX,
    HeartbeatRequest,
    Message,
    ReadyRequest,
    SpawnResponse,
    StopResult,
    WorkerLogs,
    to_json,
)
from rbee_hive_http_server._wire import SpawnRequest as SpawnBody
from rbee_hive_http_server.exceptions import ApiError
from rbee_hive_monitor import SpawnRequest
from rbee_hive_registry import worker_to_json, workers_to_json

GPU_UUID = re.compile(GPU_UUID_PATTERN)


def _device(value: int | str) -> int | str:
    if isinstance(value, int) and 0 <= value <= MAX_DEVICE_INDEX:
        return value
    if isinstance(value, str) and GPU_UUID.fullmatch(value):
        return value
    raise ApiError(
        "INVALID_FIELD",
        f"device must be an index 0-{MAX_DEVICE_INDEX} or a GPU UUID like 'GPU-6ee8e52d-...'; "
        f"got {ascii(value)[:80]}",
        details={"fields": ["device"]},
    )


async def spawn(request: Request) -> JSONResponse:
    """Start a worker; answers at once (``provisioning`` while its model downloads). The
    pool runs the spawn, logs and audits it; this route checks the body, the app's handlers
    map its errors."""
    ctx = context_of(request)
    body = await parse_json_body(request, SpawnBody)
    backend = check_identifier(body.backend, "backend")
    device = _device(body.device)
    if body.model_path:
        raise ApiError(
            "INVALID_FIELD",
            "model_path is not used: name a local file as model_ref 'file:/abs/path.gguf' "
            "(queen-rbee's empty model_path is accepted)",
            details={"fields": ["model_path"]},
        )
    engine = body.engine or ctx.default_engine
    check_identifier(engine, "engine")
    if engine not in ctx.engines:
        raise ApiError(
            "UNKNOWN_ENGINE",
            f"engine {engine!r} is not configured; configured engines: {', '.join(ctx.engines)}",
            details={"fields": ["engine"]},
        )
    worker = await ctx.pool.spawn(
        SpawnRequest(model_ref=body.model_ref, backend=backend, device=device, engine=engine)
    )
    return JSONResponse(
        to_json(SpawnResponse(worker_id=worker.id, url=worker.url, state=worker.state))
    )


def _authenticated_worker(request: Request, claimed: str) -> str:
    worker_id = callback_worker_id(request.scope)
    if worker_id is None:
        raise ApiError(
            "CALLBACK_SECRET_REQUIRED",
            "worker callbacks must use the callback URL the hive gave the worker",
        )
    if claimed != worker_id:
        raise ApiError(
            "CALLBACK_WORKER_MISMATCH",
            "this callback URL belongs to another worker; nothing was changed",
        )
    return worker_id


async def ready(request: Request) -> JSONResponse:
    """The rbee worker's ready callback, at its secret callback URL."""
    ctx = context_of(request)
    body = await parse_json_body(request, ReadyRequest)
    check_identifier(body.worker_id, "worker_id", WORKER_ID)
    worker_id = _authenticated_worker(request, body.worker_id)
    port = urlsplit(body.url).port if body.url else None
    ctx.supervisor.mark_ready(worker_id, port=port)
    return JSONResponse(to_json(Message(message="Worker registered as ready")))


async def ready_without_secret(request: Request) -> JSONResponse:
    """The original's bare callback path: refused, since anyone could call it."""
    raise ApiError(
        "CALLBACK_SECRET_REQUIRED",
        "ready callbacks are accepted only at the per-worker callback URL the hive passed as "
        "--callback-url; nothing was changed",
    )


async def heartbeat(request: Request) -> JSONResponse:
    """A heartbeat, at ``<callback_url>/v1/heartbeat`` (the worker) or ``/v1/heartbeat``."""
    ctx = context_of(request)
    body = await parse_json_body(request, HeartbeatRequest)
    check_identifier(body.worker_id, "worker_id", WORKER_ID)
    worker_id = body.worker_id
    if "secret" in request.path_params:
        worker_id = _authenticated_worker(request, body.worker_id)
    busy = None if body.state is None else body.state == "busy"
    ctx.supervisor.record_heartbeat(worker_id, busy=busy)
    return JSONResponse(to_json(Message(message="Heartbeat received")))


async def list_workers(request: Request) -> Response:
    """``{"workers": [...]}`` in registration order.

    The body is encoded once per registry generation, so a queen or a
    dashboard polling the list costs a dictionary lookup until a worker changes."""
    ctx = context_of(request)
    registry = ctx.registry
    cached = ctx.list_cache
    if cached is None or cached[0] != registry.generation:
        generation = registry.generation
        body = json.dumps(workers_to_json(registry.list()), separators=(",", ":")).encode()
        cached = ctx.list_cache = (generation, body)
    return Response(cached[1], media_type="application/json")


def _path_worker(request: Request) -> str:
    return check_identifier(request.path_params["worker_id"], "worker_id", WORKER_ID)


async def show_worker(request: Request) -> JSONResponse:
    """One worker."""
    worker_id = _path_worker(request)
    worker = context_of(request).registry.get(worker_id)
    if worker is None:
        raise ApiError("WORKER_NOT_FOUND", f"worker {worker_id!r} is not registered")
    return JSONResponse(worker_to_json(worker))


async def stop_worker(request: Request) -> JSONResponse:
    """Stop a worker for good (never restarted), then forget it; answers how it ended."""
    ctx = context_of(request)
    worker_id = _path_worker(request)
    stopped = await ctx.pool.stop(worker_id)
    result = StopResult(
        worker_id=worker_id, outcome=stopped.outcome.value, state=stopped.last.state
    )
    return JSONResponse(to_json(result))


async def worker_logs(request: Request) -> JSONResponse:
    """The last lines of the worker's log (``?lines=``, default 100, at most 2000)."""
    ctx = context_of(request)
    worker_id = _path_worker(request)
    if ctx.registry.get(worker_id) is None:
        raise ApiError("WORKER_NOT_FOUND", f"worker {worker_id!r} is not registered")
    raw = request.query_params.get("lines", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 2000:
        raise ApiError(
            "INVALID_FIELD", "lines must be a number from 1 to 2000", details={"fields": ["lines"]}
        )
    path = ctx.supervisor.log_path(worker_id)
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 512 * 1024))
            tail = f.read().decode("utf-8", "replace").splitlines()[-int(raw) :]
    except FileNotFoundError:
        tail = []
    return JSONResponse(to_json(WorkerLogs(worker_id=worker_id, lines=tail)))


ROUTES = [
    Route("/v1/workers/spawn", spawn, methods=["POST"]),
    Route("/v1/workers/ready", ready_without_secret, methods=["POST"]),
    Route("/v1/workers/ready/{secret}", ready, methods=["POST"]),
    Route("/v1/workers/ready/{secret}/v1/heartbeat", heartbeat, methods=["POST"]),
    Route("/v1/heartbeat", heartbeat, methods=["POST"]),
    Route("/v1/workers/list", list_workers, methods=["GET"]),
    Route("/v1/workers/{worker_id}", show_worker, methods=["GET"]),
    Route("/v1/workers/{worker_id}", stop_worker, methods=["DELETE"]),
    Route("/v1/workers/{worker_id}/logs", worker_logs, methods=["GET"]),
]
