"""Host resources for rbee-hive: RAM, disks and GPUs, backend detection, and admission.

``HostResources`` reads the host through small seams (``/proc``, ``statvfs``, NVML) and
never fails for want of a GPU: no NVML is zero GPUs with a reason. ``Admission`` decides
where a worker runs (``Admission.place`` returns a ``Placement``: the device and the env
that pins the worker to it), whether a worker of a model fits there, reserves room for it
while it loads, and learns what each model really uses. See the README for the estimate rule.
"""

from rbee_hive_resources._admission import Admission, CapacityAnswer, Reservation
from rbee_hive_resources._estimate import (
    AdmissionSettings,
    Basis,
    Estimate,
    Measurement,
    estimate_worker,
)
from rbee_hive_resources._fake_nvml import FakeGpu, FakeNvml
from rbee_hive_resources._host import HostResources
from rbee_hive_resources._nvml import NvmlLike, NvmlMemory, PynvmlAdapter
from rbee_hive_resources._os_probes import (
    DiskProbe,
    DiskSpace,
    MemoryProbe,
    PlatformInfo,
    ProcessMemoryProbe,
    ProcMemInfo,
    ProcStatusRss,
    StatvfsDisks,
    host_platform,
    parse_meminfo,
    parse_vmrss,
)
from rbee_hive_resources._placement import Placement
from rbee_hive_resources._sizes import GiB, KiB, MiB, describe_bytes
from rbee_hive_resources._values import (
    Backend,
    BackendInfo,
    DeviceRef,
    DiskReading,
    GpuInfo,
    GpuInventory,
    GpuProcess,
    MemoryReading,
    ResourceSnapshot,
)
from rbee_hive_resources.exceptions import (
    AdmissionRefused,
    DeviceNotFound,
    NvmlCallFailed,
    NvmlUnavailable,
    RefusalCode,
    ResourceReadError,
    ResourcesError,
    SizeUnknown,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "Admission",
    "AdmissionRefused",
    "AdmissionSettings",
    "Backend",
    "BackendInfo",
    "Basis",
    "CapacityAnswer",
    "DeviceNotFound",
    "DeviceRef",
    "DiskProbe",
    "DiskReading",
    "DiskSpace",
    "Estimate",
    "FakeGpu",
    "FakeNvml",
    "GiB",
    "GpuInfo",
    "GpuInventory",
    "GpuProcess",
    "HostResources",
    "KiB",
    "Measurement",
    "MemoryProbe",
    "MemoryReading",
    "MiB",
    "NvmlCallFailed",
    "NvmlLike",
    "NvmlMemory",
    "NvmlUnavailable",
    "Placement",
    "PlatformInfo",
    "ProcMemInfo",
    "ProcStatusRss",
    "ProcessMemoryProbe",
    "PynvmlAdapter",
    "RefusalCode",
    "Reservation",
    "ResourceReadError",
    "ResourceSnapshot",
    "ResourcesError",
    "SizeUnknown",
    "StatvfsDisks",
    "__version__",
    "describe_bytes",
    "estimate_worker",
    "host_platform",
    "parse_meminfo",
    "parse_vmrss",
]
