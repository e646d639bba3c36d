"""A fake machine for the tests: the recorded H200 through FakeNvml, RAM from a meminfo file
the test writes, disks from a table, and a fixed clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rbee_hive_resources import (
    Admission,
    DiskSpace,
    FakeGpu,
    FakeNvml,
    GiB,
    HostResources,
    PlatformInfo,
    ProcMemInfo,
    ProcStatusRss,
)

# A copy of ../shared/fixtures/nvml/h200-nvml-snapshot.json, so the package's tests stand alone.
SNAPSHOT = Path(__file__).parent / "fixtures" / "h200-nvml-snapshot.json"
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


class TableDisks:
    """A DiskProbe answering from a table of folder -> space."""

    def __init__(self) -> None:
        self.table: dict[Path, DiskSpace] = {}

    def measure(self, path: Path) -> DiskSpace:
        return self.table[path]


@pytest.fixture(scope="session")
def h200_snapshot() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def readings(h200_snapshot: dict[str, Any]) -> dict[str, tuple[FakeGpu, ...]]:
    return FakeNvml.readings_from_snapshot(h200_snapshot)


@pytest.fixture
def nvml(readings: dict[str, tuple[FakeGpu, ...]]) -> FakeNvml:
    return FakeNvml(readings["idle"])


@pytest.fixture
def set_ram(tmp_path: Path) -> Callable[[int, int], None]:
    def write(total: int, available: int) -> None:
        (tmp_path / "meminfo").write_text(
            f"MemTotal:       {total // 1024} kB\n"
            f"MemFree:        {available // 2048} kB\n"
            f"MemAvailable:   {available // 1024} kB\n"
            "Buffers:          1024 kB\n",
            encoding="ascii",
        )

    write(64 * GiB, 32 * GiB)
    return write


@pytest.fixture
def disks() -> TableDisks:
    return TableDisks()


@pytest.fixture
def set_disk(disks: TableDisks) -> Callable[[Path, int, int], None]:
    def write(path: Path, total: int, available: int) -> None:
        disks.table[path] = DiskSpace(total_bytes=total, available_bytes=available)

    return write


@pytest.fixture
def host(
    tmp_path: Path, nvml: FakeNvml, set_ram: Callable[[int, int], None], disks: TableDisks
) -> HostResources:
    (tmp_path / "proc").mkdir()
    return HostResources(
        disks={"models": tmp_path / "models", "state": tmp_path / "state"},
        nvml=nvml,
        memory_probe=ProcMemInfo(tmp_path / "meminfo"),
        disk_probe=disks,
        process_probe=ProcStatusRss(tmp_path / "proc"),
        platform=PlatformInfo(system="Linux", machine="x86_64"),
        clock=lambda: NOW,
    )


@pytest.fixture
def admission(host: HostResources) -> Admission:
    return Admission(host, clock=lambda: NOW)
