"""Every metric the hive exports, in one place: names, help texts, labels, label values.

Counters and the histogram are prometheus_client objects made per registry (never on the
global one). Gauges of live state are ``FamilySpec``s that the scrape-time collector fills
from callables, so they are set on every scrape and never accumulate; the collector also
yields its own error counter, so a failure shows in the very scrape it happened in.
"""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Histogram

SPAWN_OUTCOMES = ("ready", "failed", "refused", "cancelled")
"""How a spawn ended: became ready; launch or loading failed; refused by admission; stopped
before it was ready."""
DOWNLOAD_OUTCOMES = ("completed", "failed", "cancelled")
"""How a model download ended."""
SHUTDOWN_OUTCOMES = ("graceful", "forced", "timed_out")
"""How a worker ended during the hive's shutdown: exited on its own signal; killed at the
deadline; still not reaped at the deadline."""
KNOWN_REFUSAL_REASONS = (
    "insufficient_ram",
    "insufficient_vram",
    "insufficient_disk",
    "backend_unavailable",
    "invalid_device",
    "too_many_workers",
)
"""Admission refusal codes (lower case), present at zero from the start."""


@attrs.frozen
class FamilySpec:
    """A family that the scrape-time collector yields (a gauge unless said otherwise)."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    kind: str = "gauge"


# ---------------------------------------------------------------- gauges of live state

WORKERS = FamilySpec(
    "rbee_hive_workers",
    "Workers registered now, by state, backend and device",
    ("state", "backend", "device"),
)
DOWNLOADS_ACTIVE = FamilySpec("rbee_hive_downloads_active", "Model downloads in progress now")
CATALOG_MODELS = FamilySpec("rbee_hive_catalog_models", "Models in the catalog now")
CATALOG_SIZE = FamilySpec(
    "rbee_hive_catalog_size_bytes", "Bytes on disk of the models in the catalog now"
)
MEMORY_TOTAL = FamilySpec("rbee_hive_memory_total_bytes", "Host RAM (MemTotal)")
MEMORY_AVAILABLE = FamilySpec(
    "rbee_hive_memory_available_bytes", "Host RAM available now (MemAvailable)"
)
DISK_TOTAL = FamilySpec(
    "rbee_hive_disk_total_bytes",
    "Size of the filesystem holding a hive folder",
    ("folder", "path"),
)
DISK_AVAILABLE = FamilySpec(
    "rbee_hive_disk_available_bytes",
    "Space an unprivileged writer may still use on the filesystem holding a hive folder",
    ("folder", "path"),
)
GPU_MEMORY_TOTAL = FamilySpec(
    "rbee_hive_gpu_memory_total_bytes", "VRAM of a GPU (NVML)", ("gpu", "uuid")
)
GPU_MEMORY_USED = FamilySpec(
    "rbee_hive_gpu_memory_used_bytes", "VRAM in use on a GPU now (NVML)", ("gpu", "uuid")
)
GPU_MEMORY_FREE = FamilySpec(
    "rbee_hive_gpu_memory_free_bytes", "VRAM free on a GPU now (NVML)", ("gpu", "uuid")
)
SHUTDOWN_DURATION = FamilySpec(
    "rbee_hive_shutdown_duration_seconds",
    "How long the hive's shutdown took to stop every worker; present once it has run",
)

SCRAPE_ERRORS = FamilySpec(
    "rbee_hive_scrape_errors_total",
    "Scrapes in which reading a live-state source failed, by source",
    ("source",),
    kind="counter",
)

LIVE_FAMILIES = (
    WORKERS,
    DOWNLOADS_ACTIVE,
    CATALOG_MODELS,
    CATALOG_SIZE,
    MEMORY_TOTAL,
    MEMORY_AVAILABLE,
    DISK_TOTAL,
    DISK_AVAILABLE,
    GPU_MEMORY_TOTAL,
    GPU_MEMORY_USED,
    GPU_MEMORY_FREE,
    SHUTDOWN_DURATION,
    SCRAPE_ERRORS,
)
"""Every family the scrape-time collector may yield."""


# ---------------------------------------------------------------- counters and histogram


@attrs.frozen
class EventMetrics:
    """The counters and the histogram of one ``HiveMetrics``, registered on its registry."""

    spawns: Counter
    restarts: Counter
    crashes: Counter
    health_check_failures: Counter
    breaker_openings: Counter
    admission_refusals: Counter
    downloads: Counter
    downloaded_bytes: Counter
    http_requests: Counter
    http_request_duration: Histogram
    shutdown_worker_stops: Counter


def define_event_metrics(registry: CollectorRegistry) -> EventMetrics:
    """Make every counter and the histogram on ``registry``, with the known label values
    present at zero so that ``rate()`` works from the first scrape."""
    metrics = EventMetrics(
        spawns=Counter(
            "rbee_hive_worker_spawns_total",
            "Worker spawns, by how they ended",
            ["outcome"],
            registry=registry,
        ),
        restarts=Counter(
            "rbee_hive_worker_restarts_total",
            "Workers relaunched after a crash or failed probes",
            registry=registry,
        ),
        crashes=Counter(
            "rbee_hive_worker_crashes_total",
            "Worker processes that exited without being asked to",
            registry=registry,
        ),
        health_check_failures=Counter(
            "rbee_hive_worker_health_check_failures_total",
            "Worker health probes that failed or timed out",
            registry=registry,
        ),
        breaker_openings=Counter(
            "rbee_hive_crash_loop_breaker_openings_total",
            "Times a worker's crash-loop breaker opened and the hive gave up on it",
            registry=registry,
        ),
        admission_refusals=Counter(
            "rbee_hive_admission_refusals_total",
            "Spawns and downloads refused by admission, by refusal code",
            ["reason"],
            registry=registry,
        ),
        downloads=Counter(
            "rbee_hive_model_downloads_total",
            "Model downloads, by how they ended",
            ["outcome"],
            registry=registry,
        ),
        downloaded_bytes=Counter(
            "rbee_hive_downloaded_bytes_total",
            "Bytes of model files received from the network",
            registry=registry,
        ),
        http_requests=Counter(
            "rbee_hive_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        ),
        http_request_duration=Histogram(
            "rbee_hive_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=registry,
        ),
        shutdown_worker_stops=Counter(
            "rbee_hive_shutdown_worker_stops_total",
            "Workers stopped by the hive's shutdown, by how they ended",
            ["outcome"],
            registry=registry,
        ),
    )
    for outcome in SPAWN_OUTCOMES:
        metrics.spawns.labels(outcome=outcome)
    for outcome in DOWNLOAD_OUTCOMES:
        metrics.downloads.labels(outcome=outcome)
    for outcome in SHUTDOWN_OUTCOMES:
        metrics.shutdown_worker_stops.labels(outcome=outcome)
    for reason in KNOWN_REFUSAL_REASONS:
        metrics.admission_refusals.labels(reason=reason)
    return metrics
