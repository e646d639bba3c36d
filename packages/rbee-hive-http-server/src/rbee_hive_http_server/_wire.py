"""The hive API's JSON: one attrs class per body, one converter, one error-code table.

The routes, ``HiveClient`` and the OpenAPI document all read these classes, so the three
cannot drift apart. This module imports only attrs, cattrs and rbee_hive_registry: a queen
can use it without the server side (starlette, monitor, provisioner) installed.

Field names are the original hive's where it had the body; new fields are additive.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args, get_origin

import attrs
import cattrs

from rbee_hive_registry import WorkerInfo, WorkerState
from rbee_hive_registry import converter as worker_converter

T = TypeVar("T")

API_VERSION: Final = "v1"

IDENTIFIER_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
"""Backends and engines: letters, digits, '-' and '_'."""
WORKER_ID_PATTERN = "^[A-Za-z0-9_-]{1,128}$"
GPU_UUID_PATTERN = "^GPU-[0-9A-Fa-f-]{8,64}$"
MAX_DEVICE_INDEX = 1023

StopOutcomeName = Literal["graceful", "forced", "timed_out", "already_stopped"]


# ---------------------------------------------------------------- health


@attrs.frozen(kw_only=True)
class Health:
    """``GET /v1/health``: alive, with the hive's version."""

    status: Literal["alive"] = "alive"
    version: str
    api_version: Literal["v1"] = API_VERSION


# ---------------------------------------------------------------- workers


@attrs.frozen(kw_only=True)
class SpawnRequest:
    """``POST /v1/workers/spawn``; queen-rbee sends the first four fields.

    ``device`` is an index or a GPU UUID; ``model_path`` is accepted only empty (a local file is
    named as ``model_ref`` ``file:/abs/path.gguf``); ``engine`` defaults to the hive's."""

    model_ref: str = attrs.field(
        metadata={"openapi": {"examples": ["hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"]}}
    )
    backend: str = attrs.field(metadata={"openapi": {"pattern": IDENTIFIER_PATTERN}})
    device: int | str = attrs.field(
        metadata={
            "openapi": {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": MAX_DEVICE_INDEX},
                    {"type": "string", "pattern": GPU_UUID_PATTERN},
                ]
            }
        }
    )
    model_path: str = attrs.field(
        default="", metadata={"openapi": {"description": "Accepted empty, as queen-rbee sends it"}}
    )
    engine: str | None = None


@attrs.frozen(kw_only=True)
class SpawnResponse:
    """The spawn answer queen-rbee reads: ``loading``, or ``provisioning`` while downloading."""

    worker_id: str
    url: str
    state: WorkerState


@attrs.frozen(kw_only=True)
class ReadyRequest:
    """The worker's ready callback (interop-contracts B.4)."""

    worker_id: str
    url: str
    model_ref: str
    backend: str
    device: int


@attrs.frozen(kw_only=True)
class HeartbeatRequest:
    """The worker's heartbeat (interop-contracts B.5); ``timestamp`` is informational."""

    worker_id: str
    timestamp: str = ""
    health_status: Literal["healthy", "degraded"] = "healthy"
    state: Literal["idle", "busy"] | None = None
    """Optional, not sent by llm-worker-rbee: whether a request is running on the worker. For
    engines whose ``activity`` is ``"heartbeat"`` it drives IDLE <-> BUSY and the idle timeout;
    for the others it is ignored."""


@attrs.frozen(kw_only=True)
class Message:
    """A plain acknowledgement."""

    message: str


@attrs.frozen(kw_only=True)
class WorkerList:
    """``GET /v1/workers/list``: ``{"workers": [...]}`` in registration order."""

    workers: list[WorkerInfo]


@attrs.frozen(kw_only=True)
class StopResult:
    """``DELETE /v1/workers/{id}``: how the stop ended and the worker's last state."""

    worker_id: str
    outcome: StopOutcomeName
    state: WorkerState


@attrs.frozen(kw_only=True)
class WorkerLogs:
    """``GET /v1/workers/{id}/logs``: the last lines of the worker's log."""

    worker_id: str
    lines: list[str]


# ---------------------------------------------------------------- models


@attrs.frozen(kw_only=True)
class ModelRequest:
    """A body naming one model: download, verify."""

    model_ref: str


@attrs.frozen(kw_only=True)
class DownloadStarted:
    """``POST /v1/models/download``: ``download_id`` is ``"cached"`` (and ``local_path`` set)
    when the model is already here."""

    download_id: str
    local_path: str | None


@attrs.frozen(kw_only=True)
class Model:
    """One catalogued model."""

    model_ref: str
    provider: str
    repo: str
    revision: str
    commit: str
    file: str
    local_path: str
    size_bytes: int
    sha256: str | None
    downloaded_at: datetime


@attrs.frozen(kw_only=True)
class ModelList:
    """``GET /v1/models``."""

    models: list[Model]


@attrs.frozen(kw_only=True)
class Removed:
    """``DELETE /v1/models``: the catalogue row that was removed."""

    removed: Model


@attrs.frozen(kw_only=True)
class Verification:
    """``POST /v1/models/verify``: the model re-hashed against its recorded SHA-256."""

    model_ref: str
    local_path: str
    ok: bool
    expected_sha256: str | None
    actual_sha256: str | None
    problem: str | None


@attrs.frozen(kw_only=True)
class Downloading:
    """A progress frame while bytes arrive (the original's event, plus ``eta_seconds``)."""

    stage: Literal["downloading"] = "downloading"
    bytes_downloaded: int
    bytes_total: int | None
    speed_mbps: float
    eta_seconds: float | None


@attrs.frozen(kw_only=True)
class Downloaded:
    """The last frame of a download that completed."""

    stage: Literal["complete"] = "complete"
    local_path: str


@attrs.frozen(kw_only=True)
class DownloadError:
    """The last frame of a download that failed; ``code`` is a stable error code."""

    stage: Literal["error"] = "error"
    code: str
    message: str


ProgressEvent: TypeAlias = Downloading | Downloaded | DownloadError
"""One SSE frame of ``GET /v1/models/download/progress``, told apart by ``stage``."""


@attrs.frozen(kw_only=True)
class Download:
    """An active or recently finished download; its state's keys sit next to these on the
    wire (``{"download_id", ..., "stage": ..., "bytes_downloaded": ...}``)."""

    download_id: str
    model_ref: str
    started_at: datetime
    finished_at: datetime | None
    state: ProgressEvent


@attrs.frozen(kw_only=True)
class DownloadList:
    """``GET /v1/models/downloads``."""

    downloads: list[Download]


# ---------------------------------------------------------------- errors


@attrs.frozen(kw_only=True)
class ErrorDetail:
    """The inside of the error envelope. ``code`` is stable (clients branch on it), ``message``
    is for a person; ``details`` are extra keys some errors add next to them (``fields`` of a
    422, the figures of an admission refusal, ``workers`` using a model)."""

    code: str
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ErrorBody:
    """Every error answer: ``{"error": {"code": "UPPER_SNAKE", "message": "...", ...}}``."""

    error: ErrorDetail


ERROR_STATUS: Mapping[str, int] = {
    # request shape
    "BAD_REQUEST": 400,
    "MALFORMED_JSON": 400,
    "INVALID_MODEL_REF": 400,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "PAYLOAD_TOO_LARGE": 413,
    "INVALID_FIELD": 422,
    "UNKNOWN_ENGINE": 422,
    "INVALID_ENGINE": 422,
    "INVALID_SETTING": 422,
    "INVALID_WORKER_SPEC": 422,
    "BACKEND_UNAVAILABLE": 422,
    "INVALID_DEVICE": 422,
    # who may ask
    "UNAUTHORIZED": 401,
    "MISSING_API_KEY": 401,
    "INVALID_API_KEY": 401,
    "CALLBACK_SECRET_REQUIRED": 401,
    "FORBIDDEN": 403,
    "CALLBACK_WORKER_MISMATCH": 403,
    "GATED_MODEL": 403,
    "TOO_MANY_REQUESTS": 429,
    "TOO_MANY_AUTH_FAILURES": 429,
    # what is asked about does not exist
    "NOT_FOUND": 404,
    "WORKER_NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "MODEL_NOT_CACHED": 404,
    "MODEL_NOT_IN_CATALOG": 404,
    "UNKNOWN_DOWNLOAD": 404,
    "METHOD_NOT_ALLOWED": 405,
    # the hive's state forbids it, or it does not fit
    "CONFLICT": 409,
    "WORKER_STATE_CONFLICT": 409,
    "WORKER_NOT_LOADING": 409,
    "WORKER_EXISTS": 409,
    "MODEL_IN_USE": 409,
    "HUB_OFFLINE": 409,
    "STATE_FILE_IN_USE": 409,
    "AMBIGUOUS_MODEL": 409,
    "INSUFFICIENT_RAM": 409,
    "INSUFFICIENT_VRAM": 409,
    "TOO_MANY_WORKERS": 409,
    "INSUFFICIENT_DISK": 507,
    # the hive or something it depends on failed
    "INTERNAL_ERROR": 500,
    "PROVISIONER_ERROR": 500,
    "MONITOR_ERROR": 500,
    "WORKER_LAUNCH_FAILED": 502,
    "WORKER_BINARY_NOT_FOUND": 502,
    "WORKER_BINARY_NOT_EXECUTABLE": 502,
    "ENGINE_UNAVAILABLE": 502,
    "WORKER_EXITED_EARLY": 502,
    "WORKER_LOADING_TIMEOUT": 502,
    "WORKER_MODEL_UNAVAILABLE": 502,
    "DOWNLOAD_FAILED": 502,
    "CHECKSUM_MISMATCH": 502,
    "SERVICE_UNAVAILABLE": 503,
    "SHUTTING_DOWN": 503,
    "NO_FREE_PORT": 503,
    "DOWNLOAD_CANCELLED": 503,
    "RESOURCES_UNAVAILABLE": 503,
    "METRICS_UNAVAILABLE": 503,
    "DOWNLOAD_STALLED": 504,
}
"""The one table from an error code to its HTTP status. Domain errors carry only a code; the
HTTP layer answers with the status this table gives it."""

_STATUS_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_FIELD",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def status_for(code: str) -> int:
    """The HTTP status of an error ``code``; 500 for a code the table does not know."""
    return ERROR_STATUS.get(code, 500)


def code_for_status(status: int) -> str:
    """The generic code of a bare HTTP status (a 404 with no route, a 405): ``HTTP_ERROR``
    for one without a name."""
    return _STATUS_CODES.get(status, "HTTP_ERROR")


# ---------------------------------------------------------------- the converter


def _strict_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _int_or_str(value: object, _: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"expected an integer or a string, got {type(value).__name__}")
    return value


_EVENTS: Mapping[str, type[Downloading] | type[Downloaded] | type[DownloadError]] = {
    "downloading": Downloading,
    "complete": Downloaded,
    "error": DownloadError,
}


def _make_converter() -> cattrs.Converter:
    # A copy of the registry's converter: worker records, timestamps and states have one
    # JSON shape wherever they appear. Unknown keys are ignored on purpose: queen-rbee and
    # llm-worker-rbee send fields this hive does not use, and the original accepted them.
    conv = worker_converter.copy()
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(int | str, _int_or_str)

    def structure_event(value: object, _: object) -> ProgressEvent:
        stage = value.get("stage") if isinstance(value, dict) else None
        cls = _EVENTS.get(stage) if isinstance(stage, str) else None
        if cls is None:
            raise ValueError(f"unknown stage {stage!r}; expected one of: {', '.join(_EVENTS)}")
        event: ProgressEvent = conv.structure(value, cls)
        return event

    conv.register_structure_hook(ProgressEvent, structure_event)

    def unstructure_download(download: Download) -> dict[str, Any]:
        body: dict[str, Any] = {
            "download_id": download.download_id,
            "model_ref": download.model_ref,
            "started_at": conv.unstructure(download.started_at),
            "finished_at": conv.unstructure(download.finished_at, datetime | None),
        }
        body.update(conv.unstructure(download.state))
        return body

    def structure_download(value: object, _: type) -> Download:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        finished = value.get("finished_at")
        return Download(
            download_id=conv.structure(value["download_id"], str),
            model_ref=conv.structure(value["model_ref"], str),
            started_at=conv.structure(value["started_at"], datetime),
            finished_at=None if finished is None else conv.structure(finished, datetime),
            state=structure_event(value, ProgressEvent),
        )

    conv.register_unstructure_hook(Download, unstructure_download)
    conv.register_structure_hook(Download, structure_download)

    def unstructure_error(detail: ErrorDetail) -> dict[str, Any]:
        return {"code": detail.code, "message": detail.message, **detail.details}

    def structure_error(value: object, _: type) -> ErrorDetail:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        extra = {k: v for k, v in value.items() if k not in ("code", "message")}
        return ErrorDetail(
            code=conv.structure(value["code"], str),
            message=conv.structure(value["message"], str),
            details=extra,
        )

    conv.register_unstructure_hook(ErrorDetail, unstructure_error)
    conv.register_structure_hook(ErrorDetail, structure_error)
    return conv


converter = _make_converter()
"""The one converter of the hive API's JSON, for requests and answers alike."""


def to_json(value: object) -> Any:
    """A wire object as JSON types, ready for ``json.dumps``."""
    return converter.unstructure(value)


def from_json(data: object, cls: type[T]) -> T:
    """Structure JSON types into ``cls``; raises cattrs' errors (``describe_error`` reads them)."""
    return converter.structure(data, cls)


def _describe(exc: BaseException, type_: type | None) -> str:
    if get_origin(type_) is Literal:
        return "expected one of: " + ", ".join(repr(v) for v in get_args(type_))
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def describe_error(err: Exception, path: str) -> list[str]:
    """Each problem of a failed ``from_json`` as ``"what @ path.field"``, for a person."""
    return cattrs.transform_error(err, path=path, format_exception=_describe)
