"""The rbee-hive HTTP API's wire layer and ``HiveClient``, its typed client.

This top level imports only attrs, cattrs, aiohttp and rbee_hive_registry, so queen-rbee or
any other service can ``pip install rbee-hive-http-server`` and talk to a hive. The wire
classes (``SpawnRequest``, ``WorkerList``, ``ErrorBody``, ...), their one ``converter``
(``to_json``/``from_json``) and ``ERROR_STATUS`` (error code -> HTTP status) are what the
routes, ``HiveClient`` and ``build_openapi`` share.

The server side (``create_app``, ``HiveContext``, ``QueenNotifier``, ...) lives in
``rbee_hive_http_server.app`` and needs the ``server`` extra:
``pip install 'rbee-hive-http-server[server]'``.
"""

from rbee_hive_http_server._client import HiveClient
from rbee_hive_http_server._openapi import build_openapi
from rbee_hive_http_server._wire import (
    API_VERSION,
    ERROR_STATUS,
    Download,
    Downloaded,
    DownloadError,
    Downloading,
    DownloadList,
    DownloadStarted,
    ErrorBody,
    ErrorDetail,
    Health,
    HeartbeatRequest,
    Message,
    Model,
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
    converter,
    from_json,
    status_for,
    to_json,
)
from rbee_hive_http_server.exceptions import HiveClientError

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "API_VERSION",
    "ERROR_STATUS",
    "Download",
    "DownloadError",
    "DownloadList",
    "DownloadStarted",
    "Downloaded",
    "Downloading",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "HeartbeatRequest",
    "HiveClient",
    "HiveClientError",
    "Message",
    "Model",
    "ModelList",
    "ModelRequest",
    "ProgressEvent",
    "ReadyRequest",
    "Removed",
    "SpawnRequest",
    "SpawnResponse",
    "StopResult",
    "Verification",
    "WorkerList",
    "WorkerLogs",
    "__version__",
    "build_openapi",
    "converter",
    "from_json",
    "status_for",
    "to_json",
]
