"""``GET /openapi.json``: every route, request and response of the hive's API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rbee_hive_http_server._context import context_of

_STATES = ["provisioning", "loading", "idle", "busy", "stopping", "stopped", "failed"]
_TS = {"type": "string", "format": "date-time"}
_NULL_TS = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Malformed JSON or an invalid reference",
        401: "Missing or invalid credentials",
        403: "Forbidden (gated model, or a callback for another worker)",
        404: "Not found",
        409: "Conflict with the current state, or it does not fit",
        413: "Body over the size cap",
        415: "Body is not application/json",
        422: "A field is missing or invalid; the message names it",
        429: "Too many failed authentication attempts from this address",
        502: "The worker or the upstream hub failed",
        503: "Shutting down, or a part of the hive is not available",
        504: "The upstream transfer stalled",
        507: "Not enough disk for the download",
    }
    return {str(s): _json(_ref("Error"), texts[s]) for s in statuses}


_COMMON = (401, 413, 429)
_BODY_ERRORS = (400, 415, 422)


def _op(
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
    statuses = set(errors) | (set() if public else set(_COMMON))
    if body is not None:
        statuses |= set(_BODY_ERRORS)
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    op["responses"].update(_errors(*sorted(statuses)))
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _query(name: str, required: bool, description: str, maxlen: int = 600) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", "maxLength": maxlen},
    }


_WORKER_ID = {
    "name": "worker_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
}
_SECRET = {"name": "secret", "in": "path", "required": True, "schema": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "api_version"],
        "properties": {
            "status": {"const": "alive"},
            "version": {"type": "string"},
            "api_version": {"const": "v1"},
        },
    },
    "SpawnRequest": {
        "type": "object",
        "required": ["model_ref", "backend", "device"],
        "properties": {
            "model_ref": {
                "type": "string",
                "examples": ["hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"],
            },
            "backend": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "device": {
                "oneOf": [
                    {"type": "integer", "minimum": 0, "maximum": 1023},
                    {"type": "string", "pattern": "^GPU-[0-9A-Fa-f-]{8,64}$"},
                ]
            },
            "model_path": {
                "type": "string",
                "description": "Accepted empty, as queen-rbee sends it",
            },
            "engine": {"type": ["string", "null"]},
        },
    },
    "SpawnResponse": {
        "type": "object",
        "required": ["worker_id", "url", "state"],
        "properties": {
            "worker_id": {"type": "string"},
            "url": {"type": "string"},
            "state": {"enum": _STATES},
        },
    },
    "ReadyRequest": {
        "type": "object",
        "required": ["worker_id", "url", "model_ref", "backend", "device"],
        "properties": {
            "worker_id": {"type": "string"},
            "url": {"type": "string"},
            "model_ref": {"type": "string"},
            "backend": {"type": "string"},
            "device": {"type": "integer", "minimum": 0},
        },
    },
    "HeartbeatRequest": {
        "type": "object",
        "required": ["worker_id"],
        "properties": {
            "worker_id": {"type": "string"},
            "timestamp": {"type": "string"},
            "health_status": {"enum": ["healthy", "degraded"]},
        },
    },
    "Message": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "Worker": {
        "type": "object",
        "required": ["id", "url", "model_ref", "backend", "device", "state", "last_activity"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "model_ref": {"type": "string"},
            "backend": {"type": "string"},
            "device": {"type": "integer"},
            "state": {"enum": _STATES},
            "last_activity": _TS,
            "slots_total": {"type": "integer"},
            "slots_available": {"type": "integer"},
            "failed_health_checks": {"type": "integer"},
            "pid": {"type": ["integer", "null"]},
            "restart_count": {"type": "integer"},
            "last_restart": _NULL_TS,
            "last_heartbeat": _NULL_TS,
            "port": {"type": "integer"},
            "engine": {"type": "string"},
            "model_path": {"type": "string"},
            "started_at": _NULL_TS,
            "exit_code": {"type": ["integer", "null"]},
            "reason": {"type": ["string", "null"]},
            "revision": {"type": "integer"},
        },
    },
    "WorkerList": {
        "type": "object",
        "required": ["workers"],
        "properties": {"workers": {"type": "array", "items": _ref("Worker")}},
    },
    "StopResult": {
        "type": "object",
        "required": ["worker_id", "outcome", "state"],
        "properties": {
            "worker_id": {"type": "string"},
            "outcome": {"enum": ["graceful", "forced", "timed_out", "already_stopped"]},
            "state": {"enum": _STATES},
        },
    },
    "WorkerLogs": {
        "type": "object",
        "required": ["worker_id", "lines"],
        "properties": {
            "worker_id": {"type": "string"},
            "lines": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ModelRequest": {
        "type": "object",
        "required": ["model_ref"],
        "properties": {"model_ref": {"type": "string"}},
    },
    "DownloadStarted": {
        "type": "object",
        "required": ["download_id", "local_path"],
        "properties": {
            "download_id": {"type": "string"},
            "local_path": {"type": ["string", "null"]},
        },
    },
    "Model": {
        "type": "object",
        "required": ["model_ref", "local_path", "size_bytes"],
        "properties": {
            "model_ref": {"type": "string"},
            "provider": {"type": "string"},
            "repo": {"type": "string"},
            "revision": {"type": "string"},
            "commit": {"type": "string"},
            "file": {"type": "string"},
            "local_path": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "sha256": {"type": ["string", "null"]},
            "downloaded_at": _TS,
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": _ref("Model")}},
    },
    "Removed": {
        "type": "object",
        "required": ["removed"],
        "properties": {"removed": _ref("Model")},
    },
    "DownloadList": {
        "type": "object",
        "required": ["downloads"],
        "properties": {
            "downloads": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["download_id", "model_ref", "stage"],
                    "properties": {
                        "download_id": {"type": "string"},
                        "model_ref": {"type": "string"},
                        "stage": {"enum": ["downloading", "complete", "error"]},
                    },
                },
            }
        },
    },
    "Verify": {
        "type": "object",
        "required": ["model_ref", "ok"],
        "properties": {
            "model_ref": {"type": "string"},
            "local_path": {"type": "string"},
            "ok": {"type": "boolean"},
            "expected_sha256": {"type": ["string", "null"]},
            "actual_sha256": {"type": ["string", "null"]},
            "problem": {"type": ["string", "null"]},
        },
    },
    "Devices": {"type": "object"},
    "Capacity": {
        "type": "object",
        "required": ["fits"],
        "properties": {"fits": {"type": "boolean"}},
    },
}


def build_openapi(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this hive."""
    ok = _json
    paths: dict[str, Any] = {
        "/v1/health": {"get": _op("Liveness", ok(_ref("Health"), "Alive"), public=True)},
        "/health": {"get": _op("Liveness (alias)", ok(_ref("Health"), "Alive"), public=True)},
        "/metrics": {
            "get": {
                "summary": "Prometheus exposition",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(503),
                },
            }
        },
        "/openapi.json": {
            "get": _op("This document", ok({"type": "object"}, "OpenAPI 3.1"), public=True)
        },
        "/v1/workers/spawn": {
            "post": _op(
                "Start a worker",
                ok(_ref("SpawnResponse"), "Accepted; loading, or provisioning while downloading"),
                403,
                404,
                409,
                502,
                503,
                504,
                507,
                body="SpawnRequest",
            )
        },
        "/v1/workers/ready": {
            "post": _op(
                "Bare callback path: always refused",
                ok(_ref("Message"), "never"),
                body="ReadyRequest",
            )
        },
        "/v1/workers/ready/{secret}": {
            "post": {
                **_op(
                    "The worker's ready callback at its secret URL",
                    ok(_ref("Message"), "Marked idle"),
                    403,
                    404,
                    409,
                    body="ReadyRequest",
                    params=[_SECRET],
                ),
                "security": [],
            }
        },
        "/v1/workers/ready/{secret}/v1/heartbeat": {
            "post": {
                **_op(
                    "The worker's heartbeat at its secret URL",
                    ok(_ref("Message"), "Recorded"),
                    403,
                    404,
                    409,
                    body="HeartbeatRequest",
                    params=[_SECRET],
                ),
                "security": [],
            }
        },
        "/v1/heartbeat": {
            "post": _op(
                "Heartbeat", ok(_ref("Message"), "Recorded"), 404, 409, body="HeartbeatRequest"
            )
        },
        "/v1/workers/list": {"get": _op("All workers", ok(_ref("WorkerList"), "Workers"))},
        "/v1/workers/{worker_id}": {
            "get": _op(
                "One worker", ok(_ref("Worker"), "The worker"), 404, 422, params=[_WORKER_ID]
            ),
            "delete": _op(
                "Stop a worker for good and forget it",
                ok(_ref("StopResult"), "Stopped"),
                404,
                409,
                422,
                params=[_WORKER_ID],
            ),
        },
        "/v1/workers/{worker_id}/logs": {
            "get": _op(
                "The last lines of a worker's log",
                ok(_ref("WorkerLogs"), "Log lines"),
                404,
                422,
                params=[_WORKER_ID, _query("lines", False, "1-2000, default 100", 8)],
            )
        },
        "/v1/models/download": {
            "post": _op(
                "Start or join a download",
                ok(_ref("DownloadStarted"), "Started, joined, or cached"),
                403,
                404,
                409,
                502,
                503,
                504,
                507,
                body="ModelRequest",
            )
        },
        "/v1/models/download/progress": {
            "get": {
                **_op(
                    "Download progress as server-sent events",
                    {
                        "description": "SSE: data: {stage...} frames, then data: [DONE]",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    404,
                    422,
                    params=[_query("id", True, "download_id from POST /v1/models/download", 128)],
                ),
            }
        },
        "/v1/models/downloads": {"get": _op("Downloads", ok(_ref("DownloadList"), "Downloads"))},
        "/v1/models/verify": {
            "post": _op("Re-hash a model", ok(_ref("Verify"), "Result"), 404, body="ModelRequest")
        },
        "/v1/models": {
            "get": _op("The catalog", ok(_ref("ModelList"), "Models")),
            "delete": _op(
                "Remove a model",
                ok(_ref("Removed"), "Removed"),
                400,
                404,
                409,
                422,
                params=[_query("model_ref", True, "the model to remove")],
            ),
        },
        "/v1/devices": {"get": _op("RAM, disks, GPUs", ok(_ref("Devices"), "Devices"), 503)},
        "/v1/capacity": {
            "get": _op(
                "Would a model fit",
                ok(_ref("Capacity"), "The answer with figures"),
                400,
                404,
                409,
                422,
                503,
                params=[
                    _query("model_ref", True, "the model"),
                    _query("backend", False, "cpu, cuda or metal", 64),
                    _query("device", False, "an index or a GPU UUID", 80),
                ],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "rbee-hive", "version": version},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


async def openapi(request: Request) -> JSONResponse:
    """Serve the document."""
    return JSONResponse(build_openapi(context_of(request).version))


ROUTES = [Route("/openapi.json", openapi, methods=["GET"])]
