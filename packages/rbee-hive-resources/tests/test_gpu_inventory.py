from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from rbee_hive_resources import (
    AdmissionSettings,
    Backend,
    DeviceNotFound,
    FakeGpu,
    FakeNvml,
    GiB,
    GpuProcess,
    HostResources,
    MiB,
    NvmlCallFailed,
    NvmlUnavailable,
    PynvmlAdapter,
    estimate_worker,
)

H200_UUID = "GPU-6ee8e52d-24f3-0029-ccbf-83d10b7c657f"
H200_TOTAL = 150_754_820_096
H200_IDLE_FREE = 150_109_880_320
CHILD_PID = 421
CHILD_VRAM = 9_133_096_960  # what NVML reported for the child that held an 8 GiB tensor


class FakePynvml:
    """Just enough of the pynvml module for PynvmlAdapter, with NVML's error codes."""

    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_GPU_IS_LOST = 15
    _TEXT: ClassVar[dict[int, str]] = {
        4: "Insufficient Permissions",
        9: "Driver Not Loaded",
        12: "NVML Shared Library Not Found",
        15: "GPU is lost",
    }

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return FakePynvml._TEXT.get(self.value, f"error {self.value}")

    def __init__(self, init_error: int | None = None) -> None:
        self.init_error = init_error
        self.init_calls = 0
        self.failing: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        if name in self.failing:
            raise self.NVMLError(self.failing[name])

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.159.04"

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        return ("handle", index)

    def nvmlDeviceGetName(self, handle: object) -> bytes:
        return b"NVIDIA H200"  # older nvidia-ml-py releases return bytes

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        return H200_UUID

    def nvmlDeviceGetPciInfo(self, handle: object) -> Any:
        return SimpleNamespace(busId=b"00000000:00:06.0")

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> Any:
        self._maybe_fail("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=H200_TOTAL, free=H200_IDLE_FREE, used=644_939_776)

    def nvmlDeviceGetCudaComputeCapability(self, handle: object) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[Any]:
        return [
            SimpleNamespace(pid=CHILD_PID, usedGpuMemory=CHILD_VRAM),
            SimpleNamespace(pid=77, usedGpuMemory=None),  # WDDM, some vGPUs: not reported
        ]


def real_adapter_over(module: FakePynvml) -> PynvmlAdapter:
    return PynvmlAdapter(load_module=lambda: module)


# ---------------------------------------------------------------- the recorded H200


def test_idle_h200_reading_gives_one_gpu_with_identity_memory_and_no_process(
    host: HostResources,
) -> None:
    inventory = host.gpus()

    assert inventory.reason is None
    assert inventory.driver_version == "580.159.04"
    (gpu,) = inventory.gpus
    assert gpu.index == 0
    assert gpu.uuid == H200_UUID
    assert gpu.name == "NVIDIA H200"
    assert gpu.pci_bus_id == "00000000:00:06.0"
    assert gpu.compute_capability == (9, 0)
    assert gpu.memory_total_bytes == H200_TOTAL
    assert gpu.memory_free_bytes == H200_IDLE_FREE
    assert gpu.memory_used_bytes == 644_939_776
    assert gpu.processes == ()


def test_child_holding_8_gib_is_attributed_to_its_pid_with_what_nvml_reported(
    host: HostResources, nvml: FakeNvml, readings: dict[str, tuple[FakeGpu, ...]]
) -> None:
    nvml.gpus = readings["holding_8gib"]

    (gpu,) = host.gpus().gpus

    assert gpu.processes == (GpuProcess(pid=CHILD_PID, used_bytes=CHILD_VRAM),)
    assert gpu.memory_free_bytes == 140_967_542_784
    assert host.measure_worker(CHILD_PID, "cuda", 0) == CHILD_VRAM
    assert host.measure_worker(CHILD_PID, Backend.CUDA, H200_UUID) == CHILD_VRAM
    assert host.measure_worker(9999, "cuda", 0) is None


def test_child_is_no_longer_attributed_and_vram_is_free_again_after_it_exits(
    host: HostResources, nvml: FakeNvml, readings: dict[str, tuple[FakeGpu, ...]]
) -> None:
    nvml.gpus = readings["holding_8gib"]
    assert host.measure_worker(CHILD_PID, "cuda", 0) == CHILD_VRAM

    nvml.gpus = readings["after_child_exit"]

    (gpu,) = host.gpus().gpus
    assert gpu.processes == ()
    assert gpu.memory_free_bytes == H200_IDLE_FREE
    assert host.measure_worker(CHILD_PID, "cuda", 0) is None


def test_cuda_context_cost_about_half_a_gib_and_the_default_estimate_covers_it(
    readings: dict[str, tuple[FakeGpu, ...]],
) -> None:
    (gpu,) = readings["holding_8gib"]
    (child,) = gpu.processes
    assert child.used_bytes is not None
    context = child.used_bytes - 8 * GiB

    assert 500 * MiB < context < 600 * MiB
    estimate = estimate_worker(8 * GiB, Backend.CUDA, AdmissionSettings())
    assert estimate.required_bytes >= child.used_bytes


# ---------------------------------------------------------------- no NVML, failing NVML


def test_no_nvml_library_is_zero_gpus_with_a_reason_and_only_the_cpu_backend() -> None:
    module = FakePynvml(init_error=FakePynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    host = HostResources(nvml=real_adapter_over(module))

    inventory = host.gpus()
    again = host.gpus()

    assert inventory.gpus == ()
    assert inventory.reason is not None
    assert "NVML library not found (libnvidia-ml.so.1)" in inventory.reason
    assert "no NVIDIA driver installed" in inventory.reason
    assert again == inventory
    assert module.init_calls == 1
    assert [b.backend for b in host.backends()] == [Backend.CPU]


def test_driver_not_loaded_and_no_permission_give_their_own_reasons() -> None:
    not_loaded = HostResources(nvml=real_adapter_over(FakePynvml(init_error=9)))
    no_permission = HostResources(nvml=real_adapter_over(FakePynvml(init_error=4)))

    assert "NVIDIA driver not loaded" in (not_loaded.gpus().reason or "")
    assert "/dev/nvidia" in (no_permission.gpus().reason or "")


def test_adapter_translates_the_library_error_and_keeps_it_as_the_cause() -> None:
    adapter = real_adapter_over(FakePynvml(init_error=12))

    with pytest.raises(NvmlUnavailable) as caught:
        adapter.init()

    assert isinstance(caught.value.__cause__, FakePynvml.NVMLError)


def test_missing_nvidia_ml_py_package_is_a_reason_not_a_crash() -> None:
    def no_module() -> Any:
        raise ModuleNotFoundError("No module named 'pynvml'")

    inventory = HostResources(nvml=PynvmlAdapter(load_module=no_module)).gpus()

    assert inventory.gpus == ()
    assert "nvidia-ml-py is not installed" in (inventory.reason or "")


def test_adapter_reads_every_field_and_keeps_unreported_process_memory_as_none() -> None:
    host = HostResources(nvml=real_adapter_over(FakePynvml()))

    (gpu,) = host.gpus().gpus

    assert gpu.name == "NVIDIA H200"
    assert gpu.pci_bus_id == "00000000:00:06.0"
    assert gpu.compute_capability == (9, 0)
    assert gpu.processes == (
        GpuProcess(pid=CHILD_PID, used_bytes=CHILD_VRAM),
        GpuProcess(pid=77, used_bytes=None),
    )


def test_adapter_translates_a_failing_call_naming_the_call_and_the_gpu() -> None:
    module = FakePynvml()
    module.failing["nvmlDeviceGetMemoryInfo"] = FakePynvml.NVML_ERROR_GPU_IS_LOST
    adapter = real_adapter_over(module)
    adapter.init()

    with pytest.raises(NvmlCallFailed, match=r"nvmlDeviceGetMemoryInfo failed for GPU 0") as caught:
        adapter.memory(0)

    assert "GPU is lost" in str(caught.value)
    assert isinstance(caught.value.__cause__, FakePynvml.NVMLError)


def test_a_lost_gpu_is_left_out_with_a_reason(host: HostResources, nvml: FakeNvml) -> None:
    nvml.failures["memory"] = NvmlCallFailed("NVML nvmlDeviceGetMemoryInfo failed: GPU is lost")

    inventory = host.gpus()

    assert inventory.gpus == ()
    assert inventory.reason is not None
    assert "GPU 0 left out" in inventory.reason
    assert "GPU is lost" in inventory.reason


def test_unsupported_per_process_figures_keep_the_gpu_and_say_so(
    host: HostResources, nvml: FakeNvml
) -> None:
    nvml.failures["compute_processes"] = NvmlCallFailed("Not Supported")

    inventory = host.gpus()

    assert len(inventory.gpus) == 1
    assert inventory.gpus[0].processes == ()
    assert "per-process VRAM unknown" in (inventory.reason or "")


def test_real_adapter_on_this_machine_never_raises() -> None:
    inventory = HostResources(nvml=PynvmlAdapter()).gpus()

    # With a GPU and a driver: GPUs; without: none, and a reason a person can act on.
    assert inventory.gpus or inventory.reason


# ---------------------------------------------------------------- naming a GPU


@pytest.mark.parametrize("device", [0, "0", H200_UUID, H200_UUID.upper(), f" {H200_UUID} "])
def test_a_gpu_is_found_by_index_or_by_uuid(host: HostResources, device: int | str) -> None:
    assert host.resolve_gpu(device).index == 0


@pytest.mark.parametrize("device", [1, "1", "GPU-00000000-0000-0000-0000-000000000000", "cuda:0"])
def test_an_unknown_gpu_is_refused_naming_the_gpus_there_are(
    host: HostResources, device: int | str
) -> None:
    with pytest.raises(DeviceNotFound) as caught:
        host.resolve_gpu(device)

    assert f"0 (NVIDIA H200, {H200_UUID})" in str(caught.value)
