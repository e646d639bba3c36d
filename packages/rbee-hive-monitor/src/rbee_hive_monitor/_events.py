"""Typed lifecycle events: what happened to a worker, as the supervisor decided it.

The supervisor publishes one of these for every ready launch, unplanned exit, breaker opening,
failed launch, finished stop and failed health check, on a ``Feed`` (the registry's machinery:
a bounded buffer per subscriber, ``FeedLagged`` in place of what a slow one missed). A
consumer that lags resynchronises from ``LifecycleTotals`` (counts) or the registry (state).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from rbee_hive_monitor._stop import StopOutcome


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class _Event:
    worker_id: str
    model_ref: str
    backend: str
    device: int
    engine: str
    launch: int
    """Which launch of the worker this is about: 1 for the spawn, 2 for the first restart..."""
    at: float
    """Monotonic time (anyio's clock, seconds) at which the supervisor decided it."""
    seq: int = 0
    """Position in the supervisor's event stream, from 1; 0 until published."""


@attrs.frozen(kw_only=True)
class WorkerReady(_Event):
    """A launch became ready (callback or ready probe), or a running worker was adopted."""

    url: str
    adopted: bool = False


@attrs.frozen(kw_only=True)
class WorkerCrashed(_Event):
    """A process exited without the hive asking it to (including a kill after failed health
    checks). ``restart_in`` is the backoff before the next launch, None when there is none."""

    exit_code: int | None
    """None when the hive cannot know it (an adopted process is not its child)."""
    reason: str
    restart_in: float | None


@attrs.frozen(kw_only=True)
class BreakerOpened(_Event):
    """Too many exits in the breaker's window: the hive gave up; the worker stays FAILED."""

    reason: str
    closes_in: float
    """Seconds until a restart would be allowed again."""


@attrs.frozen(kw_only=True)
class WorkerLaunchFailed(_Event):
    """A launch did not lead to a ready worker: the program could not be started, it exited
    within ``early_exit_grace``, it was not ready by ``loading_timeout``, its restart could not
    be launched, or (``WORKER_MODEL_UNAVAILABLE``) its model could not be provided."""

    code: str
    """``WORKER_BINARY_NOT_FOUND``, ``WORKER_BINARY_NOT_EXECUTABLE``, ``WORKER_LAUNCH_FAILED``,
    ``WORKER_EXITED_EARLY``, ``WORKER_LOADING_TIMEOUT`` or ``WORKER_MODEL_UNAVAILABLE``."""
    reason: str
    exit_code: int | None = None


@attrs.frozen(kw_only=True)
class WorkerStopped(_Event):
    """The worker ended STOPPED (or FAILED when its process could not be reaped) because the
    hive stopped it: a stop request, the idle timeout, the hive's shutdown."""

    outcome: StopOutcome
    reason: str
    exit_code: int | None
    was_ready: bool
    """Whether it was serving; False means a spawn was cancelled before it was ready."""


@attrs.frozen(kw_only=True)
class HealthCheckFailed(_Event):
    """A health probe failed (``failures`` in a row, killed at ``threshold``)."""

    failures: int
    threshold: int
    problem: str


LifecycleEvent = (
    WorkerReady
    | WorkerCrashed
    | BreakerOpened
    | WorkerLaunchFailed
    | WorkerStopped
    | HealthCheckFailed
)
"""Every event the supervisor publishes."""

COUNTS = (
    "spawns_ready",
    "spawns_failed",
    "spawns_cancelled",
    "ready",
    "crashes",
    "restarts",
    "breaker_openings",
    "launch_failures",
    "stops",
    "health_check_failures",
)
"""The names ``LifecycleTotals.counts`` holds, each a running total of ``counted_as``."""


def counted_as(event: LifecycleEvent) -> tuple[str, ...]:
    """The totals one event adds 1 to (see ``COUNTS``).

    A spawn is the first launch of a worker: it ends ``spawns_ready`` (its first launch became
    ready), ``spawns_failed`` (its first launch failed) or ``spawns_cancelled`` (stopped before
    it was ever ready). An adopted worker is not a spawn of this hive.
    """
    if isinstance(event, WorkerReady):
        first = event.launch == 1 and not event.adopted
        return ("ready", "spawns_ready") if first else ("ready",)
    if isinstance(event, WorkerCrashed):
        return ("crashes", "restarts") if event.restart_in is not None else ("crashes",)
    if isinstance(event, BreakerOpened):
        return ("breaker_openings",)
    if isinstance(event, WorkerLaunchFailed):
        first = event.launch <= 1
        return ("launch_failures", "spawns_failed") if first else ("launch_failures",)
    if isinstance(event, WorkerStopped):
        return ("stops",) if event.was_ready else ("stops", "spawns_cancelled")
    return ("health_check_failures",)


@attrs.frozen(kw_only=True)
class LifecycleTotals:
    """Running totals of every event published so far, up to and including event ``seq``.

    A consumer that missed events (``FeedLagged``) adds the difference between these and what
    it counted itself, then skips events whose ``seq`` is not above this one's.
    """

    seq: int
    counts: Mapping[str, int] = attrs.field(converter=_frozen_counts)

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)
