"""``HiveMetrics``: the hive's own registry, the events it counts, and its exposition."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from rbee_hive_metrics import _definitions as d
from rbee_hive_metrics._collector import LiveStateCollector
from rbee_hive_metrics._exposition import render_registry, wants_openmetrics
from rbee_hive_metrics._live import LiveState
from rbee_hive_metrics.exceptions import UnknownLabelValue

_REFUSAL_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_HTTP_SERIES = 4096  # bound on cached label children; templates keep the real count small


@attrs.frozen(kw_only=True)
class ShutdownReport:
    """How the hive's shutdown went: what the last log lines print and ``/metrics`` shows."""

    duration_seconds: float
    graceful: int
    forced: int
    timed_out: int

    @property
    def workers(self) -> int:
        """Workers the shutdown had to stop."""
        return self.graceful + self.forced + self.timed_out

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"shutdown stopped {self.workers} worker{'s' if self.workers != 1 else ''} in "
            f"{self.duration_seconds:.2f} s: {self.graceful} graceful, {self.forced} forced, "
            f"{self.timed_out} timed out"
        )


def _checked(metric: str, label: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise UnknownLabelValue(metric, label, value, ", ".join(accepted))
    return value


class HiveMetrics:
    """The hive's metrics on its own ``CollectorRegistry`` (never the global one).

    Counters are incremented by the ``count_*`` methods as things happen; gauges of live
    state are read from ``live`` at every scrape; process and Python metrics come from
    prometheus_client's collectors. ``render`` gives the scrape body and Content-Type.
    Safe to use from any thread.
    """

    def __init__(
        self,
        live: LiveState | None = None,
        *,
        process_metrics: bool = True,
        min_render_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_render_interval < 0:
            raise ValueError(f"min_render_interval must be >= 0 s, got {min_render_interval}")
        self._min_render_interval = min_render_interval
        self._clock = clock
        self._rendered: dict[bool, tuple[float, bytes, str]] = {}
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._registry = CollectorRegistry()
        self._events = d.define_event_metrics(self._registry)
        self._last_shutdown: ShutdownReport | None = None
        self._registry.register(
            LiveStateCollector(live if live is not None else LiveState(), self._shutdown_duration)
        )
        if process_metrics:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)

    def __repr__(self) -> str:
        shutdown = "not yet" if self._last_shutdown is None else self._last_shutdown.summary()
        return f"<HiveMetrics shutdown={shutdown!r}>"

    @property
    def registry(self) -> CollectorRegistry:
        """The hive's registry, for a custom exposition or for tests."""
        return self._registry

    # ------------------------------------------------------------------ workers

    def count_spawn(self, outcome: str) -> None:
        """A spawn ended: ``ready``, ``failed``, ``refused`` or ``cancelled``."""
        self._events.spawns.labels(
            outcome=_checked("rbee_hive_worker_spawns_total", "outcome", outcome, d.SPAWN_OUTCOMES)
        ).inc()

    def count_restart(self) -> None:
        """A worker was relaunched."""
        self._events.restarts.inc()

    def count_crash(self) -> None:
        """A worker process exited without being asked to."""
        self._events.crashes.inc()

    def count_health_check_failure(self) -> None:
        """A worker's health probe failed or timed out."""
        self._events.health_check_failures.inc()

    def count_breaker_opening(self) -> None:
        """A worker's crash-loop breaker opened."""
        self._events.breaker_openings.inc()

    def count_admission_refusal(self, code: str) -> None:
        """Admission refused a spawn or a download; ``code`` is the refusal code
        (``INSUFFICIENT_VRAM``, ...), exported in lower case."""
        if not _REFUSAL_CODE.fullmatch(code):
            raise UnknownLabelValue(
                "rbee_hive_admission_refusals_total",
                "reason",
                code,
                "refusal codes such as INSUFFICIENT_VRAM (letters, digits, underscores)",
            )
        self._events.admission_refusals.labels(reason=code.lower()).inc()

    # ------------------------------------------------------------------ downloads

    def count_download(self, outcome: str) -> None:
        """A model download ended: ``completed``, ``failed`` or ``cancelled``."""
        self._events.downloads.labels(
            outcome=_checked(
                "rbee_hive_model_downloads_total", "outcome", outcome, d.DOWNLOAD_OUTCOMES
            )
        ).inc()

    def count_downloaded_bytes(self, count: int) -> None:
        """``count`` more bytes of a model file were received."""
        if count < 0:
            raise ValueError(f"downloaded bytes only grow; got {count}")
        self._events.downloaded_bytes.inc(count)

    # ------------------------------------------------------------------ HTTP

    def observe_http_request(
        self, method: str, route: str, status: int, duration_seconds: float
    ) -> None:
        """An HTTP request was answered. ``route`` is the route template
        (``/v1/workers/{worker_id}``), never the raw path; give unmatched requests one
        template such as ``<unmatched>`` so the series stay few."""
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            # labels() validates and hashes on every call; the hot path keeps the children.
            upper = method.upper() if method.upper() in _HTTP_METHODS else "OTHER"
            children = (
                self._events.http_requests.labels(method=upper, route=route, status=str(status)),
                self._events.http_request_duration.labels(method=upper, route=route),
            )
            if len(self._http_children) < _MAX_HTTP_SERIES:
                self._http_children[key] = children
        children[0].inc()
        children[1].observe(duration_seconds)

    # ------------------------------------------------------------------ shutdown

    def record_shutdown(
        self, *, duration_seconds: float, graceful: int, forced: int, timed_out: int
    ) -> ShutdownReport:
        """The shutdown stopped every worker: count how each ended, keep the duration for
        ``/metrics`` (serve one last scrape before the server goes away) and return the
        report for the last log line."""
        report = ShutdownReport(
            duration_seconds=duration_seconds,
            graceful=graceful,
            forced=forced,
            timed_out=timed_out,
        )
        stops = self._events.shutdown_worker_stops
        stops.labels(outcome="graceful").inc(graceful)
        stops.labels(outcome="forced").inc(forced)
        stops.labels(outcome="timed_out").inc(timed_out)
        self._last_shutdown = report
        return report

    @property
    def last_shutdown(self) -> ShutdownReport | None:
        """The report of the shutdown, once ``record_shutdown`` ran."""
        return self._last_shutdown

    # ------------------------------------------------------------------ exposition

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its Content-Type: OpenMetrics when ``accept`` asks for
        ``application/openmetrics-text``, else ``text/plain; version=0.0.4``.

        With ``min_render_interval`` > 0, scrapes closer together than that get the body of
        the previous one: a flood of scrapes (dashboards, several Prometheus replicas) then
        costs one render per interval instead of one per request. Prometheus scrapes every
        15 s or so, so its scrapes are always fresh.
        """
        if self._min_render_interval <= 0:
            return render_registry(self._registry, accept)
        key = wants_openmetrics(accept)
        now = self._clock()
        cached = self._rendered.get(key)
        if cached is not None and now - cached[0] < self._min_render_interval:
            return cached[1], cached[2]
        body, content_type = render_registry(self._registry, accept)
        self._rendered[key] = (now, body, content_type)
        return body, content_type

    def _shutdown_duration(self) -> float | None:
        report = self._last_shutdown
        return None if report is None else report.duration_seconds
