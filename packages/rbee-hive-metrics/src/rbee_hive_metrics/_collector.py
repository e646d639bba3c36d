"""The scrape-time collector: gauges read from live state on every scrape."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from rbee_hive_metrics import _definitions as d
from rbee_hive_metrics._live import LiveState

_log = logging.getLogger("rbee_hive_metrics")


def _gauge(spec: d.FamilySpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.documentation, labels=list(spec.labels))


def _single(spec: d.FamilySpec, value: float) -> GaugeMetricFamily:
    family = _gauge(spec)
    family.add_metric([], value)
    return family


def _workers(source: Callable[[], Any]) -> list[Metric]:
    counts: dict[tuple[str, str, str], int] = {}
    for row in source():
        key = (str(row.state), str(row.backend), str(row.device))
        counts[key] = counts.get(key, 0) + int(row.count)
    family = _gauge(d.WORKERS)
    for labels, count in counts.items():
        family.add_metric(list(labels), count)
    return [family]


def _active_downloads(source: Callable[[], Any]) -> list[Metric]:
    return [_single(d.DOWNLOADS_ACTIVE, int(source()))]


def _catalog(source: Callable[[], Any]) -> list[Metric]:
    figures = source()
    return [
        _single(d.CATALOG_MODELS, int(figures.models)),
        _single(d.CATALOG_SIZE, int(figures.total_bytes)),
    ]


def _memory(source: Callable[[], Any]) -> list[Metric]:
    reading = source()
    return [
        _single(d.MEMORY_TOTAL, int(reading.total_bytes)),
        _single(d.MEMORY_AVAILABLE, int(reading.available_bytes)),
    ]


def _disks(source: Callable[[], Any]) -> list[Metric]:
    total, available = _gauge(d.DISK_TOTAL), _gauge(d.DISK_AVAILABLE)
    for disk in source():
        labels = [str(disk.label), str(disk.path)]
        total.add_metric(labels, int(disk.total_bytes))
        available.add_metric(labels, int(disk.available_bytes))
    return [total, available]


def _gpus(source: Callable[[], Any]) -> list[Metric]:
    total, used, free = (
        _gauge(d.GPU_MEMORY_TOTAL),
        _gauge(d.GPU_MEMORY_USED),
        _gauge(d.GPU_MEMORY_FREE),
    )
    for gpu in source():
        labels = [str(gpu.index), str(gpu.uuid)]
        total.add_metric(labels, int(gpu.memory_total_bytes))
        used.add_metric(labels, int(gpu.memory_used_bytes))
        free.add_metric(labels, int(gpu.memory_free_bytes))
    return [total, used, free]


_BUILDERS: dict[
    str, tuple[Callable[[Callable[[], Any]], list[Metric]], tuple[d.FamilySpec, ...]]
] = {
    "workers": (_workers, (d.WORKERS,)),
    "active_downloads": (_active_downloads, (d.DOWNLOADS_ACTIVE,)),
    "catalog": (_catalog, (d.CATALOG_MODELS, d.CATALOG_SIZE)),
    "memory": (_memory, (d.MEMORY_TOTAL, d.MEMORY_AVAILABLE)),
    "disks": (_disks, (d.DISK_TOTAL, d.DISK_AVAILABLE)),
    "gpus": (_gpus, (d.GPU_MEMORY_TOTAL, d.GPU_MEMORY_USED, d.GPU_MEMORY_FREE)),
}
"""Each ``LiveState`` source (by field name): how to build its families, and which."""


class LiveStateCollector(Collector):
    """Yields the live gauges, built afresh from ``LiveState`` on every scrape.

    A source that raises (or returns something unreadable) loses its families for this
    scrape; the error is logged (with a traceback the first time in a row) and counted in
    ``rbee_hive_scrape_errors_total{source=...}``, which this collector yields last, so the
    count includes the scrape being served. The rest of the scrape goes on.
    """

    def __init__(self, live: LiveState, shutdown_duration: Callable[[], float | None]) -> None:
        self._live = live
        self._shutdown_duration = shutdown_duration
        self._lock = threading.Lock()
        self._errors = {source: 0 for source in _BUILDERS if getattr(live, source) is not None}
        self._failing: set[str] = set()

    def describe(self) -> Iterable[Metric]:
        """The families this collector may yield, without calling any source."""
        for source, (_, specs) in _BUILDERS.items():
            if getattr(self._live, source) is not None:
                yield from (_gauge(spec) for spec in specs)
        yield _gauge(d.SHUTDOWN_DURATION)
        yield self._error_family()

    def collect(self) -> Iterator[Metric]:
        """Read every source now and yield its families."""
        for source, (build, _) in _BUILDERS.items():
            read = getattr(self._live, source)
            if read is None:
                continue
            try:
                families = build(read)
            except Exception as err:
                self._failed(source, err)
                continue
            with self._lock:
                self._failing.discard(source)
            yield from families
        duration = self._shutdown_duration()
        if duration is not None:
            yield _single(d.SHUTDOWN_DURATION, duration)
        yield self._error_family()

    def _error_family(self) -> Metric:
        family = CounterMetricFamily(
            d.SCRAPE_ERRORS.name, d.SCRAPE_ERRORS.documentation, labels=d.SCRAPE_ERRORS.labels
        )
        with self._lock:
            for source, count in self._errors.items():
                family.add_metric([source], count)
        return family

    def _failed(self, source: str, err: Exception) -> None:
        with self._lock:
            self._errors[source] += 1
            first = source not in self._failing
            self._failing.add(source)
        _log.warning(
            "metrics scrape: reading live source %r failed (%s: %s); its gauges are left "
            "out of this scrape and counted in rbee_hive_scrape_errors_total",
            source,
            type(err).__name__,
            err,
            exc_info=err if first else None,
        )
