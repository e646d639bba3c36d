"""What the host has: frozen readings of RAM, disks and GPUs, and the backends they allow."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class Backend(enum.StrEnum):
    """An inference backend a worker can run on; the value is the wire spelling."""

    CPU = "cpu"
    CUDA = "cuda"
    METAL = "metal"


@attrs.frozen(kw_only=True)
class MemoryReading:
    """Host RAM: ``MemTotal`` and ``MemAvailable`` of ``/proc/meminfo``, in bytes."""

    total_bytes: int
    available_bytes: int


@attrs.frozen(kw_only=True)
class DiskReading:
    """The filesystem holding ``path``; ``available_bytes`` is what an unprivileged writer
    may still use (``f_bavail``), which is less than ``free`` on filesystems with a root
    reserve."""

    label: str
    path: str
    total_bytes: int
    available_bytes: int


@attrs.frozen(kw_only=True)
class GpuProcess:
    """A process holding VRAM on a GPU, as NVML reports it.

    ``used_bytes`` is None where the driver does not say (Windows WDDM, some vGPUs).
    NVML reports PIDs of the host's PID namespace: inside a container they may not match.
    """

    pid: int
    used_bytes: int | None


@attrs.frozen(kw_only=True)
class GpuInfo:
    """One NVIDIA GPU as NVML sees it; ``index`` is NVML's (PCI bus order), not CUDA's."""

    index: int
    uuid: str
    name: str
    pci_bus_id: str
    memory_total_bytes: int
    memory_free_bytes: int
    memory_used_bytes: int
    compute_capability: tuple[int, int] | None
    processes: tuple[GpuProcess, ...]


@attrs.frozen(kw_only=True)
class GpuInventory:
    """The GPUs NVML found.

    ``reason`` says, for a person, why there are none or what could not be read (no driver,
    a lost GPU, per-process figures not supported); None when everything was read.
    """

    gpus: tuple[GpuInfo, ...]
    reason: str | None = None
    driver_version: str | None = None


@attrs.frozen(kw_only=True)
class BackendInfo:
    """A backend this host can run, and how many devices it has."""

    backend: Backend
    device_count: int


@attrs.frozen(kw_only=True)
class DeviceRef:
    """A device a worker may be placed on, as listed in refusals and capacity answers."""

    backend: Backend
    index: int
    uuid: str | None
    name: str


@attrs.frozen(kw_only=True)
class ResourceSnapshot:
    """Everything ``HostResources`` reads, at one moment, for ``GET /v1/devices``."""

    taken_at: datetime
    memory: MemoryReading
    disks: tuple[DiskReading, ...]
    gpus: tuple[GpuInfo, ...]
    gpu_reason: str | None
    driver_version: str | None
    backends: tuple[BackendInfo, ...]
