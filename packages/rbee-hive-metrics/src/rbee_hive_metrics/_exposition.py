"""Exposition: the Prometheus text format, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.registry import Collector

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format, version 0.0.4: what every Prometheus understands."""
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
"""OpenMetrics 1.0.0."""

_TEXT_RANGES = frozenset({"text/plain", "text/*", "*/*"})


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_openmetrics(accept: str | None) -> bool:
    """Whether an Accept header prefers OpenMetrics (at least as much as plain text)."""
    openmetrics_q = 0.0
    text_q = 0.0
    for media_range in (accept or "").split(","):
        media, *params = media_range.split(";")
        media = media.strip().lower()
        if media == "application/openmetrics-text":
            openmetrics_q = max(openmetrics_q, _quality(params))
        elif media in _TEXT_RANGES:
            text_q = max(text_q, _quality(params))
    return openmetrics_q > 0 and openmetrics_q >= text_q


class _WithoutCreated(Collector):
    """The registry without ``_created`` samples.

    The 0.0.4 text format has no place for a counter's creation time, so prometheus_client
    writes it as an extra gauge family per counter (``..._created``) that Prometheus stores
    as a gauge: twice the series, none of them useful. OpenMetrics keeps them: there they
    are part of the counter.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            # Every scrape builds fresh Metric objects, so trimming them in place is safe.
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


def render_registry(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The scrape body of ``registry`` and its Content-Type, chosen by ``accept``."""
    if wants_openmetrics(accept):
        # prometheus_client's OpenMetrics encoder carries no annotations.
        body: bytes = openmetrics_format.generate_latest(registry)  # type: ignore[no-untyped-call]
        return body, OPENMETRICS_CONTENT_TYPE
    return text_format.generate_latest(_WithoutCreated(registry)), TEXT_CONTENT_TYPE
