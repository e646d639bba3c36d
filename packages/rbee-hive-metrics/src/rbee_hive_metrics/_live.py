"""What the collector reads at scrape time, and the shapes it expects.

The metrics room sits below the registry and beside resources, so it never imports them:
the daemon passes callables in. The figure Protocols use the attribute names of
rbee_hive_resources' readings, so ``host.memory``, ``host.disks`` and
``lambda: host.gpus().gpus`` can be passed as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import attrs


@attrs.frozen
class WorkerRow:
    """``count`` workers in ``state`` on ``backend`` and ``device``; rows with the same
    labels are added up, so one row per worker (count 1) is fine."""

    state: str
    backend: str
    device: str | int
    count: int = 1


@attrs.frozen
class CatalogFigures:
    """How many models the catalog holds and their bytes on disk."""

    models: int
    total_bytes: int


class MemoryFigures(Protocol):
    """Host RAM, as ``rbee_hive_resources.MemoryReading`` has it."""

    @property
    def total_bytes(self) -> int:
        """MemTotal in bytes."""
        ...

    @property
    def available_bytes(self) -> int:
        """MemAvailable in bytes."""
        ...


class DiskFigures(Protocol):
    """A hive folder's filesystem, as ``rbee_hive_resources.DiskReading`` has it."""

    @property
    def label(self) -> str:
        """What the folder is for: ``models``, ``state``."""
        ...

    @property
    def path(self) -> str:
        """The folder."""
        ...

    @property
    def total_bytes(self) -> int:
        """Size of the filesystem."""
        ...

    @property
    def available_bytes(self) -> int:
        """What an unprivileged writer may still use."""
        ...


class GpuFigures(Protocol):
    """A GPU's VRAM, as ``rbee_hive_resources.GpuInfo`` has it."""

    @property
    def index(self) -> int:
        """NVML index."""
        ...

    @property
    def uuid(self) -> str:
        """``GPU-...``."""
        ...

    @property
    def memory_total_bytes(self) -> int:
        """VRAM of the GPU."""
        ...

    @property
    def memory_used_bytes(self) -> int:
        """VRAM in use."""
        ...

    @property
    def memory_free_bytes(self) -> int:
        """VRAM free."""
        ...


@attrs.frozen(kw_only=True)
class LiveState:
    """The scrape-time sources; each is called once per scrape, and a family whose source
    is None is left out. A source that raises loses its families for that scrape only."""

    workers: Callable[[], Iterable[WorkerRow]] | None = None
    active_downloads: Callable[[], int] | None = None
    catalog: Callable[[], CatalogFigures] | None = None
    memory: Callable[[], MemoryFigures] | None = None
    disks: Callable[[], Iterable[DiskFigures]] | None = None
    gpus: Callable[[], Iterable[GpuFigures]] | None = None
