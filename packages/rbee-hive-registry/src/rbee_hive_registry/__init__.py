"""Worker state for rbee-hive, importable by any rbee service without the rest of the hive.

``WorkerInfo`` is the frozen record, ``WorkerState`` and ``TRANSITIONS`` the state machine,
``WorkerRegistry`` the task-safe store with its change feed (``Feed[T]``, reusable for
other item types), and ``workers_to_json`` /
``workers_from_json`` the wire shape ``{"workers": [...]}``.
"""

from rbee_hive_registry._feed import (
    ChangeKind,
    Feed,
    FeedItem,
    FeedLagged,
    Subscription,
    WorkerEvent,
)
from rbee_hive_registry._info import WorkerInfo
from rbee_hive_registry._registry import WorkerRegistry
from rbee_hive_registry._state import TRANSITIONS, WorkerState, transition_allowed
from rbee_hive_registry._wire import (
    converter,
    format_timestamp,
    parse_timestamp,
    worker_from_json,
    worker_to_json,
    workers_from_json,
    workers_to_json,
)
from rbee_hive_registry.exceptions import (
    DuplicateWorker,
    IllegalTransition,
    InvalidWorkerRecord,
    RegistryError,
    StaleUpdate,
    WorkerNotFound,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "TRANSITIONS",
    "ChangeKind",
    "DuplicateWorker",
    "Feed",
    "FeedItem",
    "FeedLagged",
    "IllegalTransition",
    "InvalidWorkerRecord",
    "RegistryError",
    "StaleUpdate",
    "Subscription",
    "WorkerEvent",
    "WorkerInfo",
    "WorkerNotFound",
    "WorkerRegistry",
    "WorkerState",
    "__version__",
    "converter",
    "format_timestamp",
    "parse_timestamp",
    "transition_allowed",
    "worker_from_json",
    "worker_to_json",
    "workers_from_json",
    "workers_to_json",
]
