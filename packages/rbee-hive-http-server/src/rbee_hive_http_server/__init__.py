"""The rbee-hive HTTP API (Starlette), the queen-rbee notifier and ``HiveClient``.

``create_app`` builds the ASGI app from a ``HiveContext``, whose ``WorkerPool`` (from
rbee_hive_monitor) runs the spawn flow; ``QueenNotifier`` tells queen-rbee about ready
workers; ``CallbackUrls`` hands workers their secret callback URLs; ``HiveClient`` is the typed
client of this API; ``build_openapi`` is the API's OpenAPI document.
"""

from rbee_hive_http_server._app import MAX_BODY_BYTES, PUBLIC_PATHS, create_app
from rbee_hive_http_server._callbacks import CallbackUrls
from rbee_hive_http_server._client import HiveClient
from rbee_hive_http_server._context import Audit, HiveContext, MetricsView, ResourceView
from rbee_hive_http_server._openapi import build_openapi
from rbee_hive_http_server._queen import QueenNotifier, QueenSettings
from rbee_hive_http_server.exceptions import ApiError, HiveClientError

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "MAX_BODY_BYTES",
    "PUBLIC_PATHS",
    "ApiError",
    "Audit",
    "CallbackUrls",
    "HiveClient",
    "HiveClientError",
    "HiveContext",
    "MetricsView",
    "QueenNotifier",
    "QueenSettings",
    "ResourceView",
    "__version__",
    "build_openapi",
    "create_app",
]
