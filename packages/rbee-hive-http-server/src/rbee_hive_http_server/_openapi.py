"""The OpenAPI 3.1 document of the hive's API, generated from the wire classes.

Schemas come from walking the attrs classes in ``_wire`` (field types -> JSON Schema), so the
document cannot describe a body the routes and ``HiveClient`` do not speak. What only a person
knows (summaries, which statuses a route answers, patterns a field must match) is written here
or in a field's ``metadata["openapi"]``.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs

from rbee_hive_http_server._wire import (
    Download,
    DownloadList,
    DownloadStarted,
    ErrorBody,
    ErrorDetail,
    Health,
    HeartbeatRequest,
    Message,
    ModelList,
    ModelRequest,
    ProgressEvent,
    ReadyRequest,
    Removed,
    SpawnRequest,
    SpawnResponse,
    StopResult,
    Verification,
    WorkerList,
    WorkerLogs,
)
from rbee_hive_registry import WorkerInfo

_PRIMITIVES: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class SchemaBuilder:
    """Turns Python types into JSON Schema, collecting each attrs class once under
    ``#/components/schemas/<ClassName>``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        """A ``$ref`` to ``cls``'s schema, adding it (and what it uses) on first sight."""
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # a placeholder first, for self-references
            self.components[name] = self._class_schema(cls)
        return {"$ref": f"#/components/schemas/{name}"}

    def schema(self, tp: Any) -> dict[str, Any]:
        """The JSON Schema of a type annotation."""
        if tp is Any:
            return {}
        if tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        if tp is datetime:
            return {"type": "string", "format": "date-time"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"enum": [member.value for member in tp]}
        if isinstance(tp, type) and attrs.has(tp):
            return self.ref(tp)
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Literal:
            return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
        if origin in (list, tuple) or origin is types.GenericAlias:
            return {"type": "array", "items": self.schema(args[0])}
        if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
            return {"type": "object", "additionalProperties": self.schema(args[1])}
        if origin in (Union, types.UnionType):
            return self._union(args)
        raise TypeError(f"no JSON Schema for {tp!r}; teach SchemaBuilder.schema this type")

    def _union(self, args: tuple[Any, ...]) -> dict[str, Any]:
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        parts = [self.schema(a) for a in rest]
        if nullable and len(parts) == 1 and set(parts[0]) == {"type"}:
            return {"type": [parts[0]["type"], "null"]}
        if nullable and len(parts) == 1 and set(parts[0]) == {"type", "format"}:
            return {"type": [parts[0]["type"], "null"], "format": parts[0]["format"]}
        if nullable:
            parts.append({"type": "null"})
        return {"anyOf": parts} if len(parts) > 1 else parts[0]

    def _class_schema(self, cls: type) -> dict[str, Any]:
        special = _SPECIAL.get(cls)
        if special is not None:
            return special(self)
        hints = get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            prop = self.schema(hints[field.name])
            prop.update(field.metadata.get("openapi", {}))
            properties[field.name] = prop
            # A Literal field (a stage, a constant) is always on the wire, default or not.
            if field.default is attrs.NOTHING or get_origin(hints[field.name]) is Literal:
                required.append(field.name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if cls.__doc__:
            schema["description"] = cls.__doc__.split("\n\n")[0].strip()
        return schema


def _download_schema(builder: SchemaBuilder) -> dict[str, Any]:
    # The state's keys sit next to the download's own on the wire (see _wire's hook).
    base = {
        "type": "object",
        "required": ["download_id", "model_ref", "started_at", "finished_at"],
        "properties": {
            "download_id": {"type": "string"},
            "model_ref": {"type": "string"},
            "started_at": builder.schema(datetime),
            "finished_at": builder.schema(datetime | None),
        },
    }
    return {"allOf": [base, builder.schema(ProgressEvent)]}


def _error_detail_schema(builder: SchemaBuilder) -> dict[str, Any]:
    # ``details`` are flattened next to code and message (see _wire's hook).
    return {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
            "message": {"type": "string"},
        },
    }


_SPECIAL = {Download: _download_schema, ErrorDetail: _error_detail_schema}

_STATUS_TEXT: Mapping[int, str] = {
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
_COMMON = (401, 413, 429)
_BODY_ERRORS = (400, 415, 422)
_OPEN_OBJECT: dict[str, Any] = {"type": "object"}


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


class _Document:
    def __init__(self) -> None:
        self.builder = SchemaBuilder()

    def answer(self, body: type | dict[str, Any], description: str) -> dict[str, Any]:
        schema = self.builder.ref(body) if isinstance(body, type) else body
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def op(
        self,
        summary: str,
        ok: dict[str, Any],
        *errors: int,
        body: type | None = None,
        params: list[dict[str, Any]] | None = None,
        public: bool = False,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
        statuses = set(errors) | (set() if public else set(_COMMON))
        if body is not None:
            statuses |= set(_BODY_ERRORS)
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self.builder.ref(body)}},
            }
        for status in sorted(statuses):
            op["responses"][str(status)] = self.answer(ErrorBody, _STATUS_TEXT[status])
        if params:
            op["parameters"] = params
        if public:
            op["security"] = []
        return op


def build_openapi(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this hive."""
    doc = _Document()
    op, answer = doc.op, doc.answer
    health = op("Liveness", answer(Health, "Alive"), public=True)
    paths: dict[str, Any] = {
        "/v1/health": {"get": health},
        "/health": {"get": {**health, "summary": "Liveness (alias)"}},
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
                    "503": answer(ErrorBody, _STATUS_TEXT[503]),
                },
            }
        },
        "/openapi.json": {
            "get": op("This document", answer(_OPEN_OBJECT, "OpenAPI 3.1"), public=True)
        },
        "/v1/workers/spawn": {
            "post": op(
                "Start a worker",
                answer(SpawnResponse, "Accepted; loading, or provisioning while downloading"),
                403,
                404,
                409,
                502,
                503,
                504,
                507,
                body=SpawnRequest,
            )
        },
        "/v1/workers/ready": {
            "post": op(
                "Bare callback path: always refused", answer(Message, "never"), body=ReadyRequest
            )
        },
        "/v1/workers/ready/{secret}": {
            "post": {
                **op(
                    "The worker's ready callback at its secret URL",
                    answer(Message, "Marked idle"),
                    403,
                    404,
                    409,
                    body=ReadyRequest,
                    params=[_SECRET],
                ),
                "security": [],
            }
        },
        "/v1/workers/ready/{secret}/v1/heartbeat": {
            "post": {
                **op(
                    "The worker's heartbeat at its secret URL",
                    answer(Message, "Recorded"),
                    403,
                    404,
                    409,
                    body=HeartbeatRequest,
                    params=[_SECRET],
                ),
                "security": [],
            }
        },
        "/v1/heartbeat": {
            "post": op("Heartbeat", answer(Message, "Recorded"), 404, 409, body=HeartbeatRequest)
        },
        "/v1/workers/list": {"get": op("All workers", answer(WorkerList, "Workers"))},
        "/v1/workers/{worker_id}": {
            "get": op(
                "One worker",
                answer(WorkerInfo, "The worker"),
                404,
                422,
                params=[_WORKER_ID],
            ),
            "delete": op(
                "Stop a worker for good and forget it",
                answer(StopResult, "Stopped"),
                404,
                409,
                422,
                params=[_WORKER_ID],
            ),
        },
        "/v1/workers/{worker_id}/logs": {
            "get": op(
                "The last lines of a worker's log",
                answer(WorkerLogs, "Log lines"),
                404,
                422,
                params=[_WORKER_ID, _query("lines", False, "1-2000, default 100", 8)],
            )
        },
        "/v1/models/download": {
            "post": op(
                "Start or join a download",
                answer(DownloadStarted, "Started, joined, or cached"),
                403,
                404,
                409,
                502,
                503,
                504,
                507,
                body=ModelRequest,
            )
        },
        "/v1/models/download/progress": {
            "get": op(
                "Download progress as server-sent events",
                {
                    "description": "SSE: 'data: <ProgressEvent JSON>' frames, then 'data: [DONE]'",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                404,
                422,
                params=[_query("id", True, "download_id from POST /v1/models/download", 128)],
            )
        },
        "/v1/models/downloads": {"get": op("Downloads", answer(DownloadList, "Downloads"))},
        "/v1/models/verify": {
            "post": op("Re-hash a model", answer(Verification, "Result"), 404, body=ModelRequest)
        },
        "/v1/models": {
            "get": op("The catalog", answer(ModelList, "Models")),
            "delete": op(
                "Remove a model",
                answer(Removed, "Removed"),
                400,
                404,
                409,
                422,
                params=[_query("model_ref", True, "the model to remove")],
            ),
        },
        "/v1/devices": {"get": op("RAM, disks, GPUs", answer(_OPEN_OBJECT, "Devices"), 503)},
        "/v1/capacity": {
            "get": op(
                "Would a model fit",
                answer(
                    {
                        **_OPEN_OBJECT,
                        "required": ["fits"],
                        "properties": {"fits": {"type": "boolean"}},
                    },
                    "The answer with figures",
                ),
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
    # Every event class is part of the API even though SSE frames carry them as text.
    doc.builder.schema(ProgressEvent)
    return {
        "openapi": "3.1.0",
        "info": {"title": "rbee-hive", "version": version},
        "components": {
            "schemas": doc.builder.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
