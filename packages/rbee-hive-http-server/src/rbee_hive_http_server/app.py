"""The server side of the hive's API: the Starlette app and what it is built from.

Needs the ``server`` extra (``pip install 'rbee-hive-http-server[server]'``): starlette and
the hive's monitor, provisioner, resources and middleware. ``create_app`` builds the ASGI app
from a ``HiveContext``, whose ``WorkerPool`` (from rbee_hive_monitor) runs the spawn flow;
``QueenNotifier`` tells queen-rbee about ready workers;
``CallbackUrls`` hands workers their secret callback URLs; ``ApiError`` is what a route raises
to answer with the error envelope.
"""

from rbee_hive_http_server._app import MAX_BODY_BYTES, PUBLIC_PATHS, create_app
from rbee_hive_http_server._callbacks import CallbackUrls
from rbee_hive_http_server._context import Audit, HiveContext, MetricsView, ResourceView
from rbee_hive_http_server._errors import EXCEPTION_HANDLERS
from rbee_hive_http_server._queen import QueenNotifier, QueenSettings
from rbee_hive_http_server.exceptions import ApiError

__all__ = [
    "EXCEPTION_HANDLERS",
    "MAX_BODY_BYTES",
    "PUBLIC_PATHS",
    "ApiError",
    "Audit",
    "CallbackUrls",
    "HiveContext",
    "MetricsView",
    "QueenNotifier",
    "QueenSettings",
    "ResourceView",
    "create_app",
]
