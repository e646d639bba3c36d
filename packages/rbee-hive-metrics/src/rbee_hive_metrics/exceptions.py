"""Errors raised by rbee_hive_metrics; each says when it is raised."""

from __future__ import annotations


class MetricsError(Exception):
    """Base class of every error this package raises."""


class UnknownLabelValue(MetricsError, ValueError):
    """Raised when an event is counted with a label value outside its fixed set (an outcome
    or a refusal code), which would otherwise grow the number of series without bound."""

    def __init__(self, metric: str, label: str, value: str, accepted: str) -> None:
        super().__init__(f"{metric}: {label}={value!r} is not one of {accepted}")
        self.metric = metric
        self.label = label
        self.value = value
