"""A fake NVML for tests, fed by hand or from a recorded NVML snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from rbee_hive_resources._nvml import NvmlMemory
from rbee_hive_resources._values import GpuProcess
from rbee_hive_resources.exceptions import NvmlCallFailed, NvmlUnavailable


@attrs.frozen(kw_only=True)
class FakeGpu:
    """What ``FakeNvml`` answers for one GPU."""

    name: str
    uuid: str
    pci_bus_id: str
    memory: NvmlMemory
    compute_capability: tuple[int, int]
    processes: tuple[GpuProcess, ...] = ()


def _fake_gpu(device: Mapping[str, Any]) -> FakeGpu:
    memory = device["memory"]
    major, minor = device["cuda_compute_capability"]
    return FakeGpu(
        name=device["name"],
        uuid=device["uuid"],
        pci_bus_id=device["pci"]["busId"],
        memory=NvmlMemory(
            total_bytes=memory["total"], free_bytes=memory["free"], used_bytes=memory["used"]
        ),
        compute_capability=(major, minor),
        processes=tuple(
            GpuProcess(pid=p["pid"], used_bytes=p["usedGpuMemory"])
            for p in device["compute_processes"]
        ),
    )


class FakeNvml:
    """An ``NvmlLike`` for tests: ``gpus`` is what it reports and may be replaced at any time.

    ``unavailable`` makes ``init`` raise ``NvmlUnavailable`` with that reason; ``failures``
    maps a method name (``"memory"``, ``"compute_processes"``, ...) to the ``NvmlCallFailed``
    that method raises.
    """

    def __init__(
        self,
        gpus: Iterable[FakeGpu] = (),
        *,
        unavailable: str | None = None,
        driver: str = "580.159.04",
    ) -> None:
        self.gpus: tuple[FakeGpu, ...] = tuple(gpus)
        self.unavailable = unavailable
        self.driver = driver
        self.failures: dict[str, NvmlCallFailed] = {}
        self.init_calls = 0
        self.started = False

    def __repr__(self) -> str:
        return f"<FakeNvml gpus={len(self.gpus)} started={self.started}>"

    @staticmethod
    def readings_from_snapshot(snapshot: Mapping[str, Any]) -> dict[str, tuple[FakeGpu, ...]]:
        """The readings of a recorded snapshot (such as ``h200-nvml-snapshot.json``), by name:
        every top-level list of devices, e.g. ``idle``, ``holding_8gib``, ``after_child_exit``."""
        return {
            key: tuple(_fake_gpu(device) for device in value)
            for key, value in snapshot.items()
            if isinstance(value, list) and all(isinstance(d, Mapping) for d in value)
        }

    def init(self) -> None:
        """Start, or raise ``NvmlUnavailable`` if ``unavailable`` is set."""
        self.init_calls += 1
        if self.unavailable is not None:
            raise NvmlUnavailable(self.unavailable)
        self.started = True

    def shutdown(self) -> None:
        """Stop."""
        self.started = False

    def driver_version(self) -> str:
        """``driver``."""
        self._check("driver_version", None)
        return self.driver

    def device_count(self) -> int:
        """``len(gpus)``."""
        self._check("device_count", None)
        return len(self.gpus)

    def name(self, index: int) -> str:
        """The fake GPU's name."""
        return self._gpu("name", index).name

    def uuid(self, index: int) -> str:
        """The fake GPU's UUID."""
        return self._gpu("uuid", index).uuid

    def pci_bus_id(self, index: int) -> str:
        """The fake GPU's PCI bus id."""
        return self._gpu("pci_bus_id", index).pci_bus_id

    def memory(self, index: int) -> NvmlMemory:
        """The fake GPU's memory."""
        return self._gpu("memory", index).memory

    def compute_capability(self, index: int) -> tuple[int, int]:
        """The fake GPU's compute capability."""
        return self._gpu("compute_capability", index).compute_capability

    def compute_processes(self, index: int) -> list[GpuProcess]:
        """The fake GPU's processes."""
        return list(self._gpu("compute_processes", index).processes)

    def _check(self, method: str, index: int | None) -> None:
        if not self.started:
            raise NvmlCallFailed(f"FakeNvml.{method} called before init()")
        failure = self.failures.get(method)
        if failure is not None:
            raise failure
        if index is not None and not 0 <= index < len(self.gpus):
            raise NvmlCallFailed(f"NVML {method} failed for GPU {index}: Invalid Argument")

    def _gpu(self, method: str, index: int) -> FakeGpu:
        self._check(method, index)
        return self.gpus[index]
