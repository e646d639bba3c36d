from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rbee_hive_resources import (
    Admission,
    AdmissionRefused,
    AdmissionSettings,
    Backend,
    Basis,
    DeviceRef,
    FakeGpu,
    FakeNvml,
    GiB,
    HostResources,
    MiB,
    PlatformInfo,
    ProcMemInfo,
    RefusalCode,
    Reservation,
    SizeUnknown,
)

H200_UUID = "GPU-6ee8e52d-24f3-0029-ccbf-83d10b7c657f"
H200_IDLE_FREE = 150_109_880_320
CHILD_PID = 421
CHILD_VRAM = 9_133_096_960
MODEL = "hf:org/model:model.gguf"
CPU_0 = DeviceRef(backend=Backend.CPU, index=0, uuid=None, name="host RAM")
H200_0 = DeviceRef(backend=Backend.CUDA, index=0, uuid=H200_UUID, name="NVIDIA H200")


def cuda_estimate(model_size: int) -> int:
    return math.ceil(model_size * 1.1) + 512 * MiB + 512 * MiB


def cpu_estimate(model_size: int) -> int:
    return math.ceil(model_size * 1.1) + 512 * MiB


def refusal(call: Callable[[], object]) -> AdmissionRefused:
    with pytest.raises(AdmissionRefused) as caught:
        call()
    return caught.value


# ---------------------------------------------------------------- the estimate and basis


def test_a_worker_that_fits_is_admitted_with_the_estimate_and_pinned_by_uuid(
    admission: Admission,
) -> None:
    reservation = admission.admit(MODEL, 8 * GiB, "cuda", 0, "w-1")

    assert reservation.required_bytes == cuda_estimate(8 * GiB)
    assert reservation.basis is Basis.ESTIMATED
    assert reservation.device == 0
    assert reservation.gpu_uuid == H200_UUID
    assert reservation.worker_env == {"CUDA_VISIBLE_DEVICES": H200_UUID}
    assert admission.reservations() == (reservation,)


def test_a_gpu_given_by_uuid_is_resolved_to_its_index(admission: Admission) -> None:
    reservation = admission.admit(MODEL, 8 * GiB, "cuda", H200_UUID.upper(), "w-1")

    assert reservation.device == 0
    assert reservation.cuda_visible_devices == H200_UUID


def test_a_cpu_worker_is_hidden_from_the_gpus(admission: Admission) -> None:
    reservation = admission.admit(MODEL, 1 * GiB, "cpu", 0, "w-1")

    assert reservation.required_bytes == cpu_estimate(1 * GiB)
    assert reservation.worker_env == {"CUDA_VISIBLE_DEVICES": ""}


def test_capacity_answers_without_reserving(admission: Admission) -> None:
    answer = admission.capacity(MODEL, 8 * GiB, "cuda", 0)

    assert answer.fits
    assert answer.code is None
    assert answer.required_bytes == cuda_estimate(8 * GiB)
    assert answer.available_bytes == H200_IDLE_FREE
    assert answer.reserve_bytes == 1 * GiB
    assert answer.basis is Basis.ESTIMATED
    assert answer.devices == (CPU_0, H200_0)
    assert "it fits" in answer.message
    assert admission.reservations() == ()


def test_a_model_of_unknown_size_and_never_measured_cannot_be_sized(
    admission: Admission,
) -> None:
    with pytest.raises(SizeUnknown, match="never measured"):
        admission.capacity(MODEL, None, "cuda", 0)


# ---------------------------------------------------------------- each refusal, with figures


def test_a_gpu_worker_too_big_for_free_vram_is_refused_with_the_figures(
    admission: Admission,
) -> None:
    refused = refusal(lambda: admission.admit(MODEL, 130 * GiB, "cuda", 0, "w-1"))

    assert refused.code is RefusalCode.INSUFFICIENT_VRAM
    assert refused.required_bytes == cuda_estimate(130 * GiB)
    assert refused.available_bytes == H200_IDLE_FREE
    assert refused.reserve_bytes == 1 * GiB
    assert refused.devices == (CPU_0, H200_0)
    assert refused.basis == "estimated"
    assert "GPU 0 (NVIDIA H200" in refused.message
    assert "144.0 GiB of VRAM" in refused.message
    assert "139.8 GiB is available" in refused.message
    assert "vram_reserve_bytes" in refused.message
    assert admission.reservations() == ()


def test_a_cpu_worker_too_big_for_available_ram_is_refused_with_the_figures(
    admission: Admission,
) -> None:
    refused = refusal(lambda: admission.admit(MODEL, 30 * GiB, "cpu", 0, "w-1"))

    assert refused.code is RefusalCode.INSUFFICIENT_RAM
    assert refused.required_bytes == cpu_estimate(30 * GiB)
    assert refused.available_bytes == 32 * GiB
    assert refused.reserve_bytes == 2 * GiB
    assert "ram_reserve_bytes" in refused.message


def test_the_reserve_is_kept_free(admission: Admission) -> None:
    fits_exactly = H200_IDLE_FREE - 1 * GiB - 1 * GiB  # weights after the factor
    model_size = int(fits_exactly / 1.1)

    assert admission.capacity(MODEL, model_size, "cuda", 0).fits
    assert not admission.capacity(MODEL, model_size + 1 * MiB, "cuda", 0).fits


@pytest.mark.parametrize("backend", ["metal", "rocm"])
def test_a_backend_this_machine_lacks_is_refused(admission: Admission, backend: str) -> None:
    refused = refusal(lambda: admission.admit(MODEL, 1 * GiB, backend, 0, "w-1"))

    assert refused.code is RefusalCode.BACKEND_UNAVAILABLE
    assert "available: cpu, cuda" in refused.message or "has cpu, cuda" in refused.message
    assert refused.devices == (CPU_0, H200_0)
    assert refused.required_bytes is None


def test_cuda_without_nvml_is_refused_with_nvmls_reason() -> None:
    admission = Admission(
        HostResources(
            nvml=FakeNvml(unavailable="NVML library not found (libnvidia-ml.so.1)"),
            memory_probe=ProcMemInfo(Path("/nonexistent")),
        )
    )

    refused = refusal(lambda: admission.admit(MODEL, 1 * GiB, "cuda", 0, "w-1"))

    assert refused.code is RefusalCode.BACKEND_UNAVAILABLE
    assert "NVML library not found (libnvidia-ml.so.1)" in refused.message
    assert refused.devices == (CPU_0,)


@pytest.mark.parametrize(
    ("backend", "device"),
    [("cuda", 1), ("cuda", "GPU-00000000-0000-0000-0000-000000000000"), ("cpu", 1)],
)
def test_a_device_that_is_not_there_is_refused_listing_the_devices(
    admission: Admission, backend: str, device: int | str
) -> None:
    refused = refusal(lambda: admission.admit(MODEL, 1 * GiB, backend, device, "w-1"))

    assert refused.code is RefusalCode.INVALID_DEVICE
    assert refused.devices == (CPU_0, H200_0)
    assert H200_UUID in refused.message


def test_more_workers_than_allowed_on_one_device_are_refused(host: HostResources) -> None:
    admission = Admission(host, AdmissionSettings(max_workers_per_device=2))
    admission.admit(MODEL, 1 * GiB, "cuda", 0, "w-1")
    admission.admit(MODEL, 1 * GiB, "cuda", 0, "w-2")

    refused = refusal(lambda: admission.admit(MODEL, 1 * GiB, "cuda", 0, "w-3"))

    assert refused.code is RefusalCode.TOO_MANY_WORKERS
    assert "max_workers_per_device = 2" in refused.message
    assert admission.capacity(MODEL, 1 * GiB, "cpu", 0).fits  # another device
    admission.release("w-1")
    assert admission.admit(MODEL, 1 * GiB, "cuda", 0, "w-3").device == 0


def test_disk_admission_refuses_a_download_that_would_eat_the_reserve(
    admission: Admission, tmp_path: Path, set_disk: Callable[[Path, int, int], None]
) -> None:
    folder = tmp_path / "models"
    set_disk(folder, 100 * GiB, 10 * GiB)

    admission.disk_admission(folder, 8 * GiB)
    refused = refusal(lambda: admission.disk_admission(folder, 9 * GiB + 512 * MiB))

    assert refused.code is RefusalCode.INSUFFICIENT_DISK
    assert refused.required_bytes == 9 * GiB + 512 * MiB
    assert refused.available_bytes == 10 * GiB
    assert refused.reserve_bytes == 1 * GiB
    assert refused.path == str(folder)
    assert "disk_reserve_bytes" in refused.message


# ---------------------------------------------------------------- reservations


def test_a_loading_worker_holds_its_memory_against_a_second_admission(
    admission: Admission,
) -> None:
    first = admission.admit(MODEL, 70 * GiB, "cuda", 0, "w-1")

    refused = refusal(lambda: admission.admit(MODEL, 70 * GiB, "cuda", 0, "w-2"))

    assert refused.code is RefusalCode.INSUFFICIENT_VRAM
    assert refused.available_bytes == H200_IDLE_FREE - first.required_bytes
    assert "held by 1 loading worker" in refused.message
    admission.release("w-1")
    assert admission.admit(MODEL, 70 * GiB, "cuda", 0, "w-2").worker_id == "w-2"


def test_concurrent_admissions_cannot_both_take_the_same_free_memory(
    admission: Admission,
) -> None:
    start = threading.Barrier(8)

    def admit(n: int) -> Reservation | RefusalCode:
        start.wait()
        try:
            return admission.admit(MODEL, 70 * GiB, "cuda", 0, f"w-{n}")
        except AdmissionRefused as refused:
            return refused.code

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(admit, range(8)))

    assert sum(isinstance(r, Reservation) for r in results) == 1
    assert results.count(RefusalCode.INSUFFICIENT_VRAM) == 7


def test_readmitting_a_worker_replaces_its_reservation(admission: Admission) -> None:
    admission.admit(MODEL, 70 * GiB, "cuda", 0, "w-1")

    again = admission.admit(MODEL, 70 * GiB, "cuda", 0, "w-1")

    assert admission.reservations() == (again,)


def test_cpu_and_metal_workers_draw_on_the_same_host_ram(
    set_ram: Callable[[int, int], None], tmp_path: Path
) -> None:
    mac = HostResources(
        nvml=FakeNvml(unavailable="no NVML on a Mac"),
        memory_probe=ProcMemInfo(tmp_path / "meminfo"),
        platform=PlatformInfo(system="Darwin", machine="arm64"),
    )
    admission = Admission(mac)
    metal = admission.admit(MODEL, 20 * GiB, "metal", 0, "w-1")

    refused = refusal(lambda: admission.admit(MODEL, 8 * GiB, "cpu", 0, "w-2"))

    assert metal.worker_env == {}
    assert refused.code is RefusalCode.INSUFFICIENT_RAM
    assert refused.available_bytes == 32 * GiB - metal.required_bytes


def test_an_adopted_worker_takes_a_slot_but_holds_no_memory(host: HostResources) -> None:
    admission = Admission(host, AdmissionSettings(max_workers_per_device=1))
    admission.adopt("w-old", MODEL, "cuda", H200_UUID)

    answer = admission.capacity(MODEL, 1 * GiB, "cuda", 0)

    assert answer.code is RefusalCode.TOO_MANY_WORKERS
    assert answer.held_bytes == 0


# ---------------------------------------------------------------- measured figures


def test_a_measured_figure_replaces_the_estimate_for_that_model_and_backend(
    admission: Admission,
) -> None:
    assert admission.capacity(MODEL, 8 * GiB, "cuda", 0).basis is Basis.ESTIMATED

    admission.record_measurement(MODEL, "cuda", CHILD_VRAM)
    answer = admission.capacity(MODEL, 8 * GiB, "cuda", 0)
    reservation = admission.admit(MODEL, 8 * GiB, "cuda", 0, "w-1")

    assert answer.basis is Basis.MEASURED
    assert answer.required_bytes == CHILD_VRAM
    assert "measured: a worker of this model used 8.5 GiB" in answer.message
    assert reservation.basis is Basis.MEASURED
    assert reservation.required_bytes == CHILD_VRAM
    assert admission.capacity(MODEL, 8 * GiB, "cpu", 0).basis is Basis.ESTIMATED
    assert admission.capacity("hf:other/model", 8 * GiB, "cuda", 0).basis is Basis.ESTIMATED
    assert admission.capacity(MODEL, None, "cuda", 0).required_bytes == CHILD_VRAM


def test_a_ready_worker_measured_by_nvml_stops_holding_its_estimate(
    admission: Admission,
    host: HostResources,
    nvml: FakeNvml,
    readings: dict[str, tuple[FakeGpu, ...]],
) -> None:
    admission.admit(MODEL, 8 * GiB, "cuda", 0, "w-1")
    nvml.gpus = readings["holding_8gib"]  # the worker loaded: NVML shows its VRAM

    used = host.measure_worker(CHILD_PID, "cuda", 0)
    assert used == CHILD_VRAM
    admission.record_measurement(MODEL, "cuda", used, worker_id="w-1")
    answer = admission.capacity(MODEL, 8 * GiB, "cuda", 0)

    assert answer.held_bytes == 0
    assert answer.available_bytes == 140_967_542_784  # counted once, in NVML's free figure
    assert answer.workers_on_device == 1
    assert answer.basis is Basis.MEASURED
    assert answer.required_bytes == CHILD_VRAM
    (reservation,) = admission.reservations()
    assert not reservation.holds_memory


def test_a_measurement_of_nothing_is_rejected(admission: Admission) -> None:
    with pytest.raises(ValueError, match="more than 0 bytes"):
        admission.record_measurement(MODEL, "cuda", 0)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("weights_factor", 0.5),
        ("weights_factor", float("nan")),
        ("ram_reserve_bytes", -1),
        ("gpu_context_bytes", -1),
        ("max_workers_per_device", 0),
    ],
)
def test_a_bad_setting_is_refused_naming_it(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        AdmissionSettings(**{setting: value})  # type: ignore[arg-type]  # one bad value per case
