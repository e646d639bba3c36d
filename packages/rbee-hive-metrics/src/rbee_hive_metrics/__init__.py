"""Prometheus metrics for rbee-hive, on the hive's own registry.

``HiveMetrics`` counts events (spawns, restarts, downloads, HTTP requests, shutdown), reads
live state at scrape time through the callables of ``LiveState`` (gauges are set on every
scrape, never accumulated), and renders the Prometheus text format or OpenMetrics.
"""

from rbee_hive_metrics._definitions import (
    DOWNLOAD_OUTCOMES,
    LIVE_FAMILIES,
    SHUTDOWN_OUTCOMES,
    SPAWN_OUTCOMES,
    FamilySpec,
)
from rbee_hive_metrics._exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    wants_openmetrics,
)
from rbee_hive_metrics._hive_metrics import HiveMetrics, ShutdownReport
from rbee_hive_metrics._live import (
    CatalogFigures,
    DiskFigures,
    GpuFigures,
    LiveState,
    MemoryFigures,
    WorkerRow,
)
from rbee_hive_metrics.exceptions import MetricsError, UnknownLabelValue

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "DOWNLOAD_OUTCOMES",
    "LIVE_FAMILIES",
    "OPENMETRICS_CONTENT_TYPE",
    "SHUTDOWN_OUTCOMES",
    "SPAWN_OUTCOMES",
    "TEXT_CONTENT_TYPE",
    "CatalogFigures",
    "DiskFigures",
    "FamilySpec",
    "GpuFigures",
    "HiveMetrics",
    "LiveState",
    "MemoryFigures",
    "MetricsError",
    "ShutdownReport",
    "UnknownLabelValue",
    "WorkerRow",
    "__version__",
    "wants_openmetrics",
]
