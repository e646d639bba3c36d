"""``Admission.place``: the one place a spawn's backend and device become a device index and
the env that pins the worker there (the CLI used to re-implement this)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rbee_hive_resources import (
    Admission,
    AdmissionRefused,
    Backend,
    FakeGpu,
    FakeNvml,
    GiB,
    HostResources,
    PlatformInfo,
    ProcMemInfo,
    RefusalCode,
)

H200_UUID = "GPU-6ee8e52d-24f3-0029-ccbf-83d10b7c657f"
CHILD_PID = 421
CHILD_VRAM = 9_133_096_960
MODEL = "hf:org/model:model.gguf"


@pytest.mark.parametrize("device", [0, "0", H200_UUID, H200_UUID.upper()])
def test_a_gpu_by_index_or_uuid_is_placed_on_its_index_and_pinned_by_uuid(
    admission: Admission, device: int | str
) -> None:
    placement = admission.place("cuda", device)

    assert placement.backend is Backend.CUDA
    assert placement.device == 0
    assert placement.gpu_uuid == H200_UUID
    assert placement.env == {"CUDA_VISIBLE_DEVICES": H200_UUID}


def test_a_cpu_worker_is_placed_on_device_0_and_sees_no_gpu(admission: Admission) -> None:
    placement = admission.place("cpu", 0)

    assert (placement.backend, placement.device, placement.gpu_uuid) == (Backend.CPU, 0, None)
    assert placement.env == {"CUDA_VISIBLE_DEVICES": ""}


def test_a_metal_worker_leaves_cuda_visible_devices_alone(
    set_ram: Callable[[int, int], None], tmp_path: Path
) -> None:
    mac = HostResources(
        nvml=FakeNvml(unavailable="no NVML on a Mac"),
        memory_probe=ProcMemInfo(tmp_path / "meminfo"),
        platform=PlatformInfo(system="Darwin", machine="arm64"),
    )

    assert Admission(mac).place("metal", "0").env == {}


@pytest.mark.parametrize(
    ("backend", "device", "code", "says"),
    [
        ("cuda", 3, RefusalCode.INVALID_DEVICE, "no GPU 3"),
        ("cuda", "GPU-00000000-0000-0000-0000-000000000000", RefusalCode.INVALID_DEVICE, "no GPU"),
        ("cpu", 1, RefusalCode.INVALID_DEVICE, "has one device, 0"),
        ("metal", 0, RefusalCode.BACKEND_UNAVAILABLE, "not available on this machine"),
        ("rocm", 0, RefusalCode.BACKEND_UNAVAILABLE, "unknown backend 'rocm'"),
    ],
)
def test_a_backend_or_device_that_is_not_here_is_refused_with_the_devices_there_are(
    admission: Admission, backend: str, device: int | str, code: RefusalCode, says: str
) -> None:
    with pytest.raises(AdmissionRefused) as caught:
        admission.place(backend, device)

    assert caught.value.code is code
    assert says in str(caught.value)
    assert {(d.backend, d.index) for d in caught.value.devices} == {
        (Backend.CPU, 0),
        (Backend.CUDA, 0),
    }
    assert admission.reservations() == ()


def test_cuda_is_unavailable_without_nvml_and_the_refusal_says_why(
    set_ram: Callable[[int, int], None], tmp_path: Path
) -> None:
    no_gpu = HostResources(
        nvml=FakeNvml(unavailable="libnvidia-ml.so.1 not found"),
        memory_probe=ProcMemInfo(tmp_path / "meminfo"),
        platform=PlatformInfo(system="Linux", machine="x86_64"),
    )

    with pytest.raises(AdmissionRefused) as caught:
        Admission(no_gpu).place("cuda", 0)

    assert caught.value.code is RefusalCode.BACKEND_UNAVAILABLE
    assert "libnvidia-ml.so.1 not found" in str(caught.value)


def test_the_reservation_of_an_admitted_worker_has_the_same_placement(
    admission: Admission,
) -> None:
    placement = admission.place("cuda", H200_UUID)

    reservation = admission.admit(MODEL, 8 * GiB, "cuda", placement.device, "w-1")

    assert reservation.placement == placement
    assert reservation.worker_env == dict(placement.env)
    assert admission.reservation("w-1") == reservation
    assert admission.reservation("w-2") is None


def test_measuring_a_ready_worker_records_its_figure_and_frees_its_held_memory(
    admission: Admission, nvml: FakeNvml, readings: dict[str, tuple[FakeGpu, ...]]
) -> None:
    admission.admit(MODEL, 8 * GiB, "cuda", 0, "w-1")
    nvml.gpus = readings["holding_8gib"]

    measured = admission.measure_worker("w-1", MODEL, "cuda", 0, CHILD_PID)

    assert measured is not None
    assert measured.used_bytes == CHILD_VRAM
    reservation = admission.reservation("w-1")
    assert reservation is not None
    assert not reservation.holds_memory
    assert admission.capacity(MODEL, None, "cuda", 0).required_bytes == CHILD_VRAM


def test_a_worker_the_host_cannot_find_is_not_measured(admission: Admission) -> None:
    admission.admit(MODEL, 8 * GiB, "cuda", 0, "w-1")

    assert admission.measure_worker("w-1", MODEL, "cuda", 0, pid=999_999) is None
    reservation = admission.reservation("w-1")
    assert reservation is not None
    assert reservation.holds_memory
