"""Adapters that connect rooms which must not import each other: resources and metrics to the
HTTP server's seams, the supervisor's lifecycle events to the counters, the audit log to the
routes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import anyio
import attrs

from rbee_hive_http_middleware import AuditLog
from rbee_hive_metrics import CatalogFigures, HiveMetrics, WorkerRow
from rbee_hive_monitor import COUNTS, LifecycleEvent, LifecycleTotals, counted_as
from rbee_hive_provisioner import DownloadComplete, DownloadError, DownloadStatus, Provisioner
from rbee_hive_registry import FeedLagged, Subscription, WorkerRegistry
from rbee_hive_resources import Admission, HostResources

log = logging.getLogger("rbee_hive.daemon")


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value  # enums
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


@attrs.define
class ResourcesAdapter:
    """The HTTP layer's ``ResourceView`` (``/v1/devices``, ``/v1/capacity``) over
    ``HostResources`` and ``Admission``; read-only."""

    host: HostResources
    admission: Admission
    registry: WorkerRegistry

    def devices(self) -> dict[str, Any]:
        """RAM, disks, backends and GPUs; GPU processes are attributed to workers by PID."""
        snapshot = self.host.snapshot()
        by_pid = {w.pid: w.id for w in self.registry.list() if w.pid is not None}
        body: dict[str, Any] = _jsonable(snapshot)
        for gpu in body.get("gpus") or []:
            for proc in gpu.get("processes") or []:
                proc["worker_id"] = by_pid.get(proc.get("pid"))
        body["reservations"] = _jsonable(list(self.admission.reservations()))
        return body

    def capacity(
        self, *, model_ref: str, model_size: int, backend: str, device: int | str
    ) -> dict[str, Any]:
        """Would it fit; never reserves."""
        answer = self.admission.capacity(model_ref, model_size, backend, device)
        body: dict[str, Any] = _jsonable(answer)
        return body


@attrs.define
class AuditAdapter:
    """The routes' ``Audit`` over the hash-chained ``AuditLog``."""

    log: AuditLog

    _EVENTS: ClassVar[dict[str, str]] = {
        "worker.spawn": "worker_spawn",
        "worker.stop": "worker_stop",
        "worker.kill": "worker_kill",
        "model.download": "model_download",
        "model.remove": "model_removal",
    }

    def record(self, event: str, *, outcome: str, details: dict[str, Any]) -> None:
        """Append; the audit log itself never raises on a full disk."""
        self.log.record(self._EVENTS.get(event, event), outcome=outcome, details=details)

    def download_ended(self, status: DownloadStatus) -> None:
        """The provisioner's ``on_download_end``: how each download ended, failures with their
        code (the route only records that a download started)."""
        details: dict[str, Any] = {"model_ref": str(status.ref), "download_id": status.download_id}
        state = status.state
        if isinstance(state, DownloadComplete):
            outcome = "complete"
            details["local_path"] = str(state.local_path)
        elif isinstance(state, DownloadError):
            outcome = "cancelled" if state.code == "DOWNLOAD_CANCELLED" else "failed"
            details["code"] = state.code
            details["message"] = state.message[:500]
        else:
            return
        self.log.record("model_download_end", outcome=outcome, details=details)


def worker_rows(registry: WorkerRegistry) -> Iterable[WorkerRow]:
    """One row per worker for the workers-by-state gauge."""
    return [WorkerRow(w.state.value, w.backend, w.device) for w in registry.list()]


def catalog_figures(provisioner: Provisioner) -> CatalogFigures:
    """Catalogue size for the gauges."""
    stats = provisioner.stats()
    return CatalogFigures(models=stats.catalog_models, total_bytes=stats.catalog_bytes)


class LifecycleSource(Protocol):
    """Where the lifecycle events come from (the ``Supervisor``)."""

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        """Follow the events from now on."""
        ...

    def totals(self) -> LifecycleTotals:
        """Running totals of every event so far."""
        ...


_COUNTERS: dict[str, Callable[[HiveMetrics], None]] = {
    "spawns_ready": lambda m: m.count_spawn("ready"),
    "spawns_failed": lambda m: m.count_spawn("failed"),
    "spawns_cancelled": lambda m: m.count_spawn("cancelled"),
    "crashes": HiveMetrics.count_crash,
    "restarts": HiveMetrics.count_restart,
    "breaker_openings": HiveMetrics.count_breaker_opening,
    "health_check_failures": HiveMetrics.count_health_check_failure,
}
"""The lifecycle totals (``rbee_hive_monitor.COUNTS``) that are Prometheus counters."""


@attrs.define
class MetricsFollower:
    """Turns the supervisor's lifecycle events into counters (spawns by outcome, including
    early launch failures; restarts, crashes, failed health checks, breaker openings), and the
    provisioner's totals into download counters.

    When its buffer overflows (``FeedLagged``) it resynchronises from the supervisor's
    running totals, so a counter never misses an event nor counts one twice.
    """

    events: LifecycleSource
    metrics: HiveMetrics
    provisioner: Provisioner
    capacity: int | None = None
    """The subscription's buffer (None: the feed's default)."""
    _counted: Counter[str] = attrs.field(factory=Counter)
    _synced_seq: int = 0
    _seen_downloads: tuple[int, int, int, int] = (0, 0, 0, 0)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._poll_downloads)
            with self.events.subscribe(self.capacity) as feed:
                self.resync()  # what happened before the subscription (adoptions at start)
                task_status.started()
                async for item in feed:
                    if isinstance(item, FeedLagged):
                        log.warning(
                            "metrics: %d lifecycle events were dropped from a full buffer; "
                            "counting from the supervisor's totals instead",
                            item.missed,
                        )
                        self.resync()
                    else:
                        self.observe(item)

    def observe(self, event: LifecycleEvent) -> None:
        """Count one event (unless the last resync already counted it)."""
        if event.seq <= self._synced_seq:
            return
        for name in counted_as(event):
            self._count(name, 1)

    def resync(self) -> None:
        """Catch up with the supervisor's totals: add what was missed, never count twice."""
        totals = self.events.totals()
        for name in COUNTS:
            missing = totals[name] - self._counted[name]
            if missing > 0:
                self._count(name, missing)
        self._synced_seq = totals.seq

    def _count(self, name: str, times: int) -> None:
        self._counted[name] += times
        counter = _COUNTERS.get(name)
        if counter is not None:
            for _ in range(times):
                counter(self.metrics)

    async def _poll_downloads(self) -> None:
        # The provisioner keeps totals; counters follow them once a second.
        while True:
            stats = self.provisioner.stats()
            now = (
                stats.downloads_completed,
                stats.downloads_failed,
                stats.downloads_cancelled,
                stats.bytes_downloaded,
            )
            before = self._seen_downloads
            for outcome, new, old in zip(
                ("completed", "failed", "cancelled"), now, before, strict=False
            ):
                for _ in range(new - old):
                    self.metrics.count_download(outcome)
            if now[3] > before[3]:
                self.metrics.count_downloaded_bytes(now[3] - before[3])
            self._seen_downloads = now
            await anyio.sleep(1.0)


@attrs.define
class MetricsAdapter:
    """The HTTP layer's ``MetricsView`` over ``HiveMetrics``."""

    metrics: HiveMetrics

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """One scrape."""
        return self.metrics.render(accept)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request."""
        self.metrics.observe_http_request(method, route, status, seconds)
