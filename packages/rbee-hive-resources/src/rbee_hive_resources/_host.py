"""``HostResources``: RAM, disks and GPUs of this machine, read through the seams."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from rbee_hive_resources._nvml import NvmlLike, PynvmlAdapter
from rbee_hive_resources._os_probes import (
    DiskProbe,
    MemoryProbe,
    PlatformInfo,
    ProcessMemoryProbe,
    ProcMemInfo,
    ProcStatusRss,
    StatvfsDisks,
    host_platform,
)
from rbee_hive_resources._values import (
    Backend,
    BackendInfo,
    DiskReading,
    GpuInfo,
    GpuInventory,
    MemoryReading,
    ResourceSnapshot,
)
from rbee_hive_resources.exceptions import DeviceNotFound, NvmlCallFailed, NvmlUnavailable


def _utc_now() -> datetime:
    return datetime.now(UTC)


def describe_gpus(gpus: tuple[GpuInfo, ...]) -> str:
    """``0 (NVIDIA H200, GPU-6ee8...)``, comma-separated, or ``none``: for messages."""
    if not gpus:
        return "none"
    return ", ".join(f"{gpu.index} ({gpu.name}, {gpu.uuid})" for gpu in gpus)


class HostResources:
    """Reads this host's RAM, disks and GPUs on every call (no caching: callers want now).

    NVML is started on the first GPU read. If it cannot start (no library, no driver), the
    host has zero GPUs for the rest of its life, and every inventory says why; install the
    driver and restart the hive to change that. Call ``close`` at shutdown.
    """

    def __init__(
        self,
        *,
        disks: Mapping[str, Path] | None = None,
        nvml: NvmlLike | None = None,
        memory_probe: MemoryProbe | None = None,
        disk_probe: DiskProbe | None = None,
        process_probe: ProcessMemoryProbe | None = None,
        platform: PlatformInfo | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._disks = dict(disks or {})
        self._nvml = nvml if nvml is not None else PynvmlAdapter()
        self._memory_probe = memory_probe if memory_probe is not None else ProcMemInfo()
        self._disk_probe = disk_probe if disk_probe is not None else StatvfsDisks()
        self._process_probe = process_probe if process_probe is not None else ProcStatusRss()
        self._platform = platform if platform is not None else host_platform()
        self._clock = clock
        self._nvml_lock = threading.Lock()
        self._nvml_started = False
        self._nvml_reason: str | None = None

    def __repr__(self) -> str:
        nvml = "started" if self._nvml_started else (self._nvml_reason or "not started yet")
        return f"<HostResources disks={sorted(self._disks)} nvml={nvml!r}>"

    # ------------------------------------------------------------------ RAM and disks

    def memory(self) -> MemoryReading:
        """Host RAM now; raises ``ResourceReadError``."""
        return self._memory_probe.read_memory()

    def disk(self, path: Path, label: str = "") -> DiskReading:
        """The filesystem holding ``path`` now; raises ``ResourceReadError``."""
        space = self._disk_probe.measure(path)
        return DiskReading(
            label=label,
            path=str(path),
            total_bytes=space.total_bytes,
            available_bytes=space.available_bytes,
        )

    def disks(self) -> tuple[DiskReading, ...]:
        """Every configured folder (label -> path), each measured now."""
        return tuple(self.disk(path, label) for label, path in self._disks.items())

    # ------------------------------------------------------------------ GPUs

    def gpus(self) -> GpuInventory:
        """The GPUs now; zero GPUs with a ``reason`` when NVML is unavailable. Never raises
        for NVML's sake."""
        if not self._ensure_nvml():
            return GpuInventory(gpus=(), reason=self._nvml_reason)
        notes: list[str] = []
        try:
            count = self._nvml.device_count()
        except NvmlCallFailed as err:
            return GpuInventory(gpus=(), reason=str(err))
        try:
            driver: str | None = self._nvml.driver_version()
        except NvmlCallFailed as err:
            driver = None
            notes.append(str(err))
        gpus: list[GpuInfo] = []
        for index in range(count):
            try:
                gpus.append(self._read_gpu(index, notes))
            except NvmlCallFailed as err:
                notes.append(f"GPU {index} left out: {err}")
        if count == 0:
            notes.append("NVML found no NVIDIA GPU on this machine")
        return GpuInventory(
            gpus=tuple(gpus), reason="; ".join(notes) or None, driver_version=driver
        )

    def resolve_gpu(self, device: int | str, inventory: GpuInventory | None = None) -> GpuInfo:
        """The GPU named by an NVML index (``0``, ``"0"``) or a UUID (``"GPU-..."``, any
        case); raises ``DeviceNotFound`` naming the GPUs there are."""
        gpus = (inventory if inventory is not None else self.gpus()).gpus
        if isinstance(device, int) or device.strip().isdigit():
            index = int(device)
            for gpu in gpus:
                if gpu.index == index:
                    return gpu
        elif device.strip().upper().startswith("GPU-"):
            wanted = device.strip().lower()
            for gpu in gpus:
                if gpu.uuid.lower() == wanted:
                    return gpu
        raise DeviceNotFound(
            f"no GPU {device!r} on this machine; give an NVML index or a UUID (GPU-...). "
            f"GPUs here: {describe_gpus(gpus)}"
        )

    def backends(self, inventory: GpuInventory | None = None) -> tuple[BackendInfo, ...]:
        """``cpu`` always; ``cuda`` when NVML found a GPU; ``metal`` on Apple silicon."""
        found = [BackendInfo(backend=Backend.CPU, device_count=1)]
        gpus = (inventory if inventory is not None else self.gpus()).gpus
        if gpus:
            found.append(BackendInfo(backend=Backend.CUDA, device_count=len(gpus)))
        if self._platform.has_metal:
            found.append(BackendInfo(backend=Backend.METAL, device_count=1))
        return tuple(found)

    def measure_worker(self, pid: int, backend: Backend | str, device: int | str) -> int | None:
        """What a ready worker really holds: its VRAM on ``device`` from NVML for ``cuda``,
        its resident RAM (``VmRSS``) otherwise. None when the process is not found (gone, or
        NVML reports PIDs of another PID namespace) or the driver does not say."""
        if Backend(backend) is Backend.CUDA:
            gpu = self.resolve_gpu(device)
            for process in gpu.processes:
                if process.pid == pid:
                    return process.used_bytes
            return None
        return self._process_probe.resident_bytes(pid)

    def snapshot(self) -> ResourceSnapshot:
        """RAM, disks, GPUs and backends, read now."""
        inventory = self.gpus()
        return ResourceSnapshot(
            taken_at=self._clock(),
            memory=self.memory(),
            disks=self.disks(),
            gpus=inventory.gpus,
            gpu_reason=inventory.reason,
            driver_version=inventory.driver_version,
            backends=self.backends(inventory),
        )

    def close(self) -> None:
        """Release NVML if it was started."""
        with self._nvml_lock:
            if self._nvml_started:
                self._nvml_started = False
                self._nvml.shutdown()

    # ------------------------------------------------------------------ internals

    def _ensure_nvml(self) -> bool:
        with self._nvml_lock:
            if not self._nvml_started and self._nvml_reason is None:
                try:
                    self._nvml.init()
                except NvmlUnavailable as err:
                    self._nvml_reason = str(err)
                else:
                    self._nvml_started = True
            return self._nvml_started

    def _read_gpu(self, index: int, notes: list[str]) -> GpuInfo:
        nvml = self._nvml
        memory = nvml.memory(index)
        try:
            capability: tuple[int, int] | None = nvml.compute_capability(index)
        except NvmlCallFailed as err:
            capability = None
            notes.append(str(err))
        try:
            processes = tuple(nvml.compute_processes(index))
        except NvmlCallFailed as err:
            processes = ()
            notes.append(f"per-process VRAM unknown: {err}")
        return GpuInfo(
            index=index,
            uuid=nvml.uuid(index),
            name=nvml.name(index),
            pci_bus_id=nvml.pci_bus_id(index),
            memory_total_bytes=memory.total_bytes,
            memory_free_bytes=memory.free_bytes,
            memory_used_bytes=memory.used_bytes,
            compute_capability=capability,
            processes=processes,
        )
