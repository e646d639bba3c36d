"""The operating-system seams: RAM, disk space, a process's resident memory, the platform.

Each seam is a small Protocol with one real adapter here; tests pass fakes.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Protocol

import attrs

from rbee_hive_resources._values import MemoryReading
from rbee_hive_resources.exceptions import ResourceReadError

_KIB = 1024


class MemoryProbe(Protocol):
    """Reads host RAM."""

    def read_memory(self) -> MemoryReading:
        """Total and available RAM now; raises ``ResourceReadError``."""
        ...


@attrs.frozen
class DiskSpace:
    """Size of a filesystem and what an unprivileged writer may still use on it."""

    total_bytes: int
    available_bytes: int


class DiskProbe(Protocol):
    """Measures the filesystem that holds a folder."""

    def measure(self, path: Path) -> DiskSpace:
        """The filesystem's space; raises ``ResourceReadError``."""
        ...


class ProcessMemoryProbe(Protocol):
    """Reads how much RAM a process holds."""

    def resident_bytes(self, pid: int) -> int | None:
        """The resident set size of ``pid``, or None if there is no such process."""
        ...


@attrs.frozen
class PlatformInfo:
    """``platform.system()`` and ``platform.machine()``, injectable so tests choose."""

    system: str
    machine: str

    @property
    def has_metal(self) -> bool:
        """True on Apple silicon, where llama.cpp-style workers run on Metal."""
        return self.system == "Darwin" and self.machine == "arm64"


def host_platform() -> PlatformInfo:
    """The platform this process runs on."""
    return PlatformInfo(system=platform.system(), machine=platform.machine())


def parse_meminfo(text: str, source: str = "/proc/meminfo") -> MemoryReading:
    """``MemTotal`` and ``MemAvailable`` of a ``/proc/meminfo`` text, in bytes."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = _KIB if len(parts) > 1 and parts[1] == "kB" else 1
            fields[key.strip()] = int(parts[0]) * scale
    missing = [key for key in ("MemTotal", "MemAvailable") if key not in fields]
    if missing:
        raise ResourceReadError(
            f"{source} has no {' or '.join(missing)} line; rbee-hive needs MemAvailable "
            "(Linux 3.14 or later) to decide whether a CPU worker fits in RAM"
        )
    return MemoryReading(total_bytes=fields["MemTotal"], available_bytes=fields["MemAvailable"])


def parse_vmrss(text: str) -> int | None:
    """``VmRSS`` of a ``/proc/<pid>/status`` text in bytes; None when absent (kernel
    threads, zombies)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * _KIB
    return None


@attrs.frozen
class ProcMemInfo:
    """The real ``MemoryProbe``: reads ``/proc/meminfo`` on every call (a few microseconds)."""

    path: Path = Path("/proc/meminfo")

    def read_memory(self) -> MemoryReading:
        """Total and available RAM now; raises ``ResourceReadError``."""
        try:
            text = self.path.read_text(encoding="ascii")
        except OSError as err:
            raise ResourceReadError(
                f"cannot read {self.path} ({err.strerror}); rbee-hive reads host RAM from "
                "/proc/meminfo, which needs Linux with /proc mounted"
            ) from err
        return parse_meminfo(text, source=str(self.path))


@attrs.frozen
class StatvfsDisks:
    """The real ``DiskProbe``: ``os.statvfs`` of the folder, or of its nearest existing
    parent when the folder is not created yet (a model cache before the first download)."""

    def measure(self, path: Path) -> DiskSpace:
        """The filesystem's space; raises ``ResourceReadError``."""
        target = path
        while not target.exists() and target != target.parent:
            target = target.parent
        try:
            stats = os.statvfs(target)
        except OSError as err:
            raise ResourceReadError(
                f"cannot measure the disk of {path} (statvfs of {target}: {err.strerror}); "
                "check the folder setting and its permissions"
            ) from err
        return DiskSpace(
            total_bytes=stats.f_blocks * stats.f_frsize,
            available_bytes=stats.f_bavail * stats.f_frsize,
        )


@attrs.frozen
class ProcStatusRss:
    """The real ``ProcessMemoryProbe``: ``VmRSS`` from ``/proc/<pid>/status``."""

    proc_root: Path = Path("/proc")

    def resident_bytes(self, pid: int) -> int | None:
        """The resident set size of ``pid``, or None if there is no such process."""
        try:
            text = (self.proc_root / str(pid) / "status").read_text(encoding="utf-8")
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError as err:
            raise ResourceReadError(
                f"cannot read {self.proc_root}/{pid}/status ({err.strerror}) to measure "
                "the worker's RAM"
            ) from err
        return parse_vmrss(text)
