"""What the routes need, handed over once at composition time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from starlette.requests import Request

from rbee_hive_monitor import Supervisor, WorkerPool
from rbee_hive_provisioner import Provisioner
from rbee_hive_registry import WorkerRegistry


class ResourceView(Protocol):
    """Read-only resources for ``/v1/devices`` and ``/v1/capacity`` (JSON-ready dicts)."""

    def devices(self) -> dict[str, Any]:
        """RAM, disks and GPUs with free VRAM and which workers use how much."""
        ...

    def capacity(
        self, *, model_ref: str, model_size: int, backend: str, device: int | str
    ) -> dict[str, Any]:
        """Would a model of ``model_size`` bytes fit; ``fits`` plus the figures and reasons."""
        ...


class MetricsView(Protocol):
    """The Prometheus side: render a scrape, and count HTTP requests."""

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition body and its content type, negotiated from ``Accept``."""
        ...

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request under its route template."""
        ...


class Audit(Protocol):
    """Where the routes record what they did themselves (model downloads); the pool records
    worker spawns and stops and model removals through the audit it was built with."""

    def record(self, event: str, *, outcome: str, details: dict[str, Any]) -> None:
        """Append one audit record."""
        ...


@attrs.define
class HiveContext:
    """Everything the routes use. ``resources``, ``metrics`` and ``audit`` may be absent
    (a hive assembled in a test); the routes then answer without them."""

    version: str
    registry: WorkerRegistry
    supervisor: Supervisor
    provisioner: Provisioner
    pool: WorkerPool
    """Spawns and stops workers and removes models (the model-in-use rule)."""
    engines: Sequence[str]
    default_engine: str = "rbee"
    resources: ResourceView | None = None
    metrics: MetricsView | None = None
    audit: Audit | None = None
    queen_status: Callable[[], dict[str, Any]] | None = None
    health_body: bytes | None = attrs.field(default=None, repr=False)
    """The encoded health answer (it never changes while the daemon runs)."""
    list_cache: tuple[int, bytes] | None = attrs.field(default=None, repr=False)
    """The encoded worker list and the registry generation it was encoded at."""


def context_of(request: Request) -> HiveContext:
    """The context the app was built with."""
    ctx = request.app.state.hive
    assert isinstance(ctx, HiveContext)
    return ctx
