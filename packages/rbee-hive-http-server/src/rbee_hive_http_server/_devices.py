"""``GET /v1/devices`` and ``GET /v1/capacity``: what this machine has and what would fit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rbee_hive_http_server._body import check_identifier
from rbee_hive_http_server._context import HiveContext, ResourceView, context_of
from rbee_hive_http_server._wire import MAX_DEVICE_INDEX
from rbee_hive_http_server._workers import GPU_UUID
from rbee_hive_http_server.exceptions import ApiError
from rbee_hive_provisioner import ModelRef


def _resources(ctx: HiveContext) -> ResourceView:
    if ctx.resources is None:
        raise ApiError("RESOURCES_UNAVAILABLE", "resource inventory is not wired in this hive")
    return ctx.resources


async def devices(request: Request) -> JSONResponse:
    """RAM, disks and GPUs, with the workers that use each GPU."""
    return JSONResponse(_resources(context_of(request)).devices())


async def capacity(request: Request) -> JSONResponse:
    """Would ``model_ref`` fit on ``backend``/``device``; and if not, why not."""
    ctx = context_of(request)
    view = _resources(ctx)
    query = request.query_params
    text = query.get("model_ref", "")
    backend = check_identifier(query.get("backend", "cpu"), "backend")
    raw_device = query.get("device", "0")
    device: int | str
    if raw_device.isdigit() and int(raw_device) <= MAX_DEVICE_INDEX:
        device = int(raw_device)
    elif GPU_UUID.fullmatch(raw_device):
        device = raw_device
    else:
        raise ApiError(
            "INVALID_FIELD",
            "device must be an index or a GPU UUID",
            details={"fields": ["device"]},
        )
    if not text:
        raise ApiError(
            "INVALID_FIELD", "give the model as ?model_ref=...", details={"fields": ["model_ref"]}
        )
    ref = ModelRef.parse(text)
    local = await ctx.provisioner.lookup(ref)
    if local is None:
        raise ApiError(
            "MODEL_NOT_CACHED",
            f"model {str(ref)!r} is not downloaded yet, so its size is unknown; "
            "download it first (POST /v1/models/download)",
        )
    answer = view.capacity(
        model_ref=str(ref), model_size=local.size, backend=backend, device=device
    )
    return JSONResponse(answer)


ROUTES = [
    Route("/v1/devices", devices, methods=["GET"]),
    Route("/v1/capacity", capacity, methods=["GET"]),
]
