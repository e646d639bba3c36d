from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import rbee_hive_resources
from rbee_hive_resources import (
    Backend,
    BackendInfo,
    FakeNvml,
    GiB,
    HostResources,
    MemoryReading,
    PlatformInfo,
    ProcMemInfo,
    ProcStatusRss,
    ResourceReadError,
    StatvfsDisks,
    describe_bytes,
    parse_meminfo,
    parse_vmrss,
)

MEMINFO = """\
MemTotal:       24570424 kB
MemFree:        23000000 kB
MemAvailable:   23817156 kB
Buffers:          102400 kB
HugePages_Total:       0
"""


def test_public_names_are_exported_and_documented() -> None:
    exported = {name for name in dir(rbee_hive_resources) if not name.startswith("_")} | {
        "__version__"
    }
    modules = {"exceptions"}
    assert set(rbee_hive_resources.__all__) == exported - modules
    for name in rbee_hive_resources.__all__:
        value = getattr(rbee_hive_resources, name)
        if callable(value) and not isinstance(value, int):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


# ---------------------------------------------------------------- RAM


def test_meminfo_total_and_available_are_read_in_bytes() -> None:
    reading = parse_meminfo(MEMINFO)

    assert reading == MemoryReading(
        total_bytes=24_570_424 * 1024, available_bytes=23_817_156 * 1024
    )


def test_meminfo_without_memavailable_names_the_file_and_the_need() -> None:
    with pytest.raises(ResourceReadError, match=r"/x/meminfo has no MemAvailable line"):
        parse_meminfo("MemTotal: 1 kB\n", source="/x/meminfo")


def test_missing_meminfo_file_is_a_read_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResourceReadError, match=r"cannot read .*nothing-here"):
        ProcMemInfo(tmp_path / "nothing-here").read_memory()


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="needs Linux /proc")
def test_this_host_has_some_ram() -> None:
    reading = ProcMemInfo().read_memory()

    assert 0 < reading.available_bytes <= reading.total_bytes


def test_host_memory_follows_the_probe_on_every_call(
    host: HostResources, set_ram: Callable[[int, int], None]
) -> None:
    set_ram(16 * GiB, 10 * GiB)
    first = host.memory()
    set_ram(16 * GiB, 3 * GiB)

    assert first.available_bytes == 10 * GiB
    assert host.memory().available_bytes == 3 * GiB


# ---------------------------------------------------------------- a worker's RSS


def test_vmrss_is_read_in_bytes_and_absent_for_kernel_threads() -> None:
    assert parse_vmrss("Name:\tllama\nVmRSS:\t  524288 kB\nThreads:\t4\n") == 512 * 1024 * 1024
    assert parse_vmrss("Name:\tkthreadd\nThreads:\t1\n") is None


def test_cpu_worker_is_measured_by_its_rss_and_a_gone_process_is_none(
    host: HostResources, tmp_path: Path
) -> None:
    (tmp_path / "proc" / "4242").mkdir()
    (tmp_path / "proc" / "4242" / "status").write_text("VmRSS:\t 2097152 kB\n")

    assert host.measure_worker(4242, "cpu", 0) == 2 * GiB
    assert host.measure_worker(4243, "cpu", 0) is None


def test_this_process_rss_is_read_from_proc() -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    rss = ProcStatusRss().resident_bytes(os.getpid())

    assert rss is not None
    assert rss > 1024 * 1024


# ---------------------------------------------------------------- disks


def test_disk_of_a_folder_not_created_yet_is_its_parents(tmp_path: Path) -> None:
    later = tmp_path / "models" / "hub"

    space = StatvfsDisks().measure(later)

    assert space == StatvfsDisks().measure(tmp_path)
    assert 0 < space.available_bytes <= space.total_bytes


def test_configured_folders_are_each_measured_under_their_label(
    host: HostResources, tmp_path: Path, set_disk: Callable[[Path, int, int], None]
) -> None:
    set_disk(tmp_path / "models", 500 * GiB, 120 * GiB)
    set_disk(tmp_path / "state", 40 * GiB, 30 * GiB)

    disks = host.disks()

    assert [(d.label, d.path, d.available_bytes) for d in disks] == [
        ("models", str(tmp_path / "models"), 120 * GiB),
        ("state", str(tmp_path / "state"), 30 * GiB),
    ]


# ---------------------------------------------------------------- backends and snapshot


@pytest.mark.parametrize(
    ("system", "machine", "metal"),
    [("Darwin", "arm64", True), ("Darwin", "x86_64", False), ("Linux", "aarch64", False)],
)
def test_metal_is_detected_only_on_apple_silicon(system: str, machine: str, metal: bool) -> None:
    host = HostResources(
        nvml=FakeNvml(unavailable="no NVML on a Mac"), platform=PlatformInfo(system, machine)
    )

    backends = [b.backend for b in host.backends()]

    assert backends == ([Backend.CPU, Backend.METAL] if metal else [Backend.CPU])


def test_cuda_is_a_backend_when_nvml_finds_a_gpu(host: HostResources) -> None:
    assert host.backends() == (
        BackendInfo(backend=Backend.CPU, device_count=1),
        BackendInfo(backend=Backend.CUDA, device_count=1),
    )


def test_snapshot_holds_ram_disks_gpus_and_backends_read_at_one_time(
    host: HostResources, tmp_path: Path, set_disk: Callable[[Path, int, int], None]
) -> None:
    set_disk(tmp_path / "models", 500 * GiB, 120 * GiB)
    set_disk(tmp_path / "state", 40 * GiB, 30 * GiB)

    snapshot = host.snapshot()

    assert snapshot.taken_at == datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert snapshot.memory.available_bytes == 32 * GiB
    assert len(snapshot.disks) == 2
    assert [gpu.name for gpu in snapshot.gpus] == ["NVIDIA H200"]
    assert snapshot.gpu_reason is None
    assert snapshot.driver_version == "580.159.04"
    assert [b.backend for b in snapshot.backends] == [Backend.CPU, Backend.CUDA]


def test_close_releases_nvml(host: HostResources, nvml: FakeNvml) -> None:
    host.gpus()
    host.close()

    assert not nvml.started


def test_byte_counts_are_written_in_binary_units() -> None:
    assert describe_bytes(512) == "512 B"
    assert describe_bytes(1536) == "1.5 KiB"
    assert describe_bytes(512 * 1024 * 1024) == "512.0 MiB"
    assert describe_bytes(9_133_096_960) == "8.5 GiB"
