"""The NVML seam: the handful of NVML calls the hive uses, and the real adapter over pynvml.

Devices are named by NVML index; the adapter keeps the handles. Every method raises only this
package's errors: ``NvmlUnavailable`` from ``init``, ``NvmlCallFailed`` from the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs

from rbee_hive_resources._values import GpuProcess
from rbee_hive_resources.exceptions import NvmlCallFailed, NvmlUnavailable


@attrs.frozen
class NvmlMemory:
    """``nvmlDeviceGetMemoryInfo``: total, free and used VRAM in bytes (used includes the
    driver's reserve)."""

    total_bytes: int
    free_bytes: int
    used_bytes: int


class NvmlLike(Protocol):
    """What ``HostResources`` asks of NVML."""

    def init(self) -> None:
        """Start NVML; raises ``NvmlUnavailable`` with a reason a person can act on."""
        ...

    def shutdown(self) -> None:
        """Release NVML; safe to call when ``init`` failed or never ran."""
        ...

    def driver_version(self) -> str:
        """The NVIDIA driver's version string."""
        ...

    def device_count(self) -> int:
        """How many GPUs NVML sees."""
        ...

    def name(self, index: int) -> str:
        """The product name, e.g. ``NVIDIA H200``."""
        ...

    def uuid(self, index: int) -> str:
        """The GPU's UUID, ``GPU-...``: stable across reboots and index reordering."""
        ...

    def pci_bus_id(self, index: int) -> str:
        """The PCI bus id, ``00000000:00:06.0``."""
        ...

    def memory(self, index: int) -> NvmlMemory:
        """VRAM now."""
        ...

    def compute_capability(self, index: int) -> tuple[int, int]:
        """CUDA compute capability, (major, minor)."""
        ...

    def compute_processes(self, index: int) -> list[GpuProcess]:
        """The compute processes on the GPU and the VRAM each holds."""
        ...


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes; newer ones decode.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _why_init_failed(nvml: Any, err: Exception) -> str:
    code = getattr(err, "value", None)
    if code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return (
            "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver installed; "
            "CUDA workers are unavailable until the driver is installed and rbee-hive restarted"
        )
    if code == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return (
            "NVIDIA driver not loaded (NVML: Driver Not Loaded): the kernel module is not "
            "running; check `nvidia-smi`, then restart rbee-hive"
        )
    if code == getattr(nvml, "NVML_ERROR_NO_PERMISSION", object()):
        return (
            "no permission to use the NVIDIA devices (NVML: Insufficient Permissions): run "
            "rbee-hive as a user who may open /dev/nvidia*"
        )
    return f"NVML could not start ({err}); CUDA workers are unavailable"


class PynvmlAdapter:
    """The real ``NvmlLike`` over nvidia-ml-py, which is imported on ``init``, not before."""

    def __init__(self, load_module: Callable[[], Any] = _import_pynvml) -> None:
        self._load_module = load_module
        self._nvml: Any = None
        self._handles: dict[int, Any] = {}

    def __repr__(self) -> str:
        state = "started" if self._nvml is not None else "not started"
        return f"<PynvmlAdapter {state}>"

    def init(self) -> None:
        """Start NVML; raises ``NvmlUnavailable`` with a reason a person can act on."""
        try:
            nvml = self._load_module()
        except ImportError as err:
            raise NvmlUnavailable(
                "nvidia-ml-py is not installed (import pynvml failed): reinstall "
                "rbee-hive-resources, which depends on it"
            ) from err
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            raise NvmlUnavailable(_why_init_failed(nvml, err)) from err
        self._nvml = nvml

    def shutdown(self) -> None:
        """Release NVML; safe to call when ``init`` failed or never ran."""
        nvml, self._nvml = self._nvml, None
        self._handles.clear()
        if nvml is None:
            return
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as err:
            raise NvmlCallFailed(f"NVML nvmlShutdown failed: {err}") from err

    def driver_version(self) -> str:
        """The NVIDIA driver's version string."""
        nvml = self._started()
        return _text(
            self._call("nvmlSystemGetDriverVersion", None, nvml.nvmlSystemGetDriverVersion)
        )

    def device_count(self) -> int:
        """How many GPUs NVML sees."""
        nvml = self._started()
        return int(self._call("nvmlDeviceGetCount", None, nvml.nvmlDeviceGetCount))

    def name(self, index: int) -> str:
        """The product name."""
        nvml = self._started()
        return _text(
            self._call("nvmlDeviceGetName", index, nvml.nvmlDeviceGetName, self._handle(index))
        )

    def uuid(self, index: int) -> str:
        """The GPU's UUID."""
        nvml = self._started()
        return _text(
            self._call("nvmlDeviceGetUUID", index, nvml.nvmlDeviceGetUUID, self._handle(index))
        )

    def pci_bus_id(self, index: int) -> str:
        """The PCI bus id."""
        nvml = self._started()
        info = self._call(
            "nvmlDeviceGetPciInfo", index, nvml.nvmlDeviceGetPciInfo, self._handle(index)
        )
        return _text(info.busId)

    def memory(self, index: int) -> NvmlMemory:
        """VRAM now."""
        nvml = self._started()
        info = self._call(
            "nvmlDeviceGetMemoryInfo", index, nvml.nvmlDeviceGetMemoryInfo, self._handle(index)
        )
        return NvmlMemory(
            total_bytes=int(info.total), free_bytes=int(info.free), used_bytes=int(info.used)
        )

    def compute_capability(self, index: int) -> tuple[int, int]:
        """CUDA compute capability, (major, minor)."""
        nvml = self._started()
        major, minor = self._call(
            "nvmlDeviceGetCudaComputeCapability",
            index,
            nvml.nvmlDeviceGetCudaComputeCapability,
            self._handle(index),
        )
        return int(major), int(minor)

    def compute_processes(self, index: int) -> list[GpuProcess]:
        """The compute processes on the GPU and the VRAM each holds."""
        nvml = self._started()
        processes = self._call(
            "nvmlDeviceGetComputeRunningProcesses",
            index,
            nvml.nvmlDeviceGetComputeRunningProcesses,
            self._handle(index),
        )
        return [
            GpuProcess(
                pid=int(p.pid),
                used_bytes=None if p.usedGpuMemory is None else int(p.usedGpuMemory),
            )
            for p in processes
        ]

    def _started(self) -> Any:
        if self._nvml is None:
            raise NvmlCallFailed("NVML was used before init() succeeded; this is a bug in the hive")
        return self._nvml

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            nvml = self._started()
            handle = self._call(
                "nvmlDeviceGetHandleByIndex", index, nvml.nvmlDeviceGetHandleByIndex, index
            )
            self._handles[index] = handle
        return handle

    def _call(self, what: str, index: int | None, fn: Callable[..., Any], *args: Any) -> Any:
        nvml = self._started()
        try:
            return fn(*args)
        except nvml.NVMLError as err:
            where = "" if index is None else f" for GPU {index}"
            raise NvmlCallFailed(f"NVML {what} failed{where}: {err}") from err
