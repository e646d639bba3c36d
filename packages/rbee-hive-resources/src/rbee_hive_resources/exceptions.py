"""Errors raised by rbee_hive_resources; each says when it is raised."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rbee_hive_resources._values import DeviceRef


class ResourcesError(Exception):
    """Base class of every error this package raises."""


class ResourceReadError(ResourcesError):
    """Raised when the host cannot be read: ``/proc/meminfo`` missing or unparsable, a folder
    whose disk cannot be measured."""


class NvmlUnavailable(ResourcesError):
    """Raised by ``NvmlLike.init`` when NVML cannot be used here (no library, no driver).

    Not a fault: ``HostResources`` turns it into an inventory of zero GPUs whose ``reason``
    is this message.
    """


class NvmlCallFailed(ResourcesError):
    """Raised by an ``NvmlLike`` method when one NVML call fails (GPU lost, not supported)."""


class DeviceNotFound(ResourcesError, LookupError):
    """Raised by ``HostResources.resolve_gpu`` when no GPU has that index or UUID."""


class SizeUnknown(ResourcesError, ValueError):
    """Raised by ``Admission`` when a model has no measurement and no size was given."""


class RefusalCode(enum.StrEnum):
    """Why an admission was refused; the value is the wire spelling."""

    INSUFFICIENT_RAM = "INSUFFICIENT_RAM"
    INSUFFICIENT_VRAM = "INSUFFICIENT_VRAM"
    INSUFFICIENT_DISK = "INSUFFICIENT_DISK"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    INVALID_DEVICE = "INVALID_DEVICE"
    TOO_MANY_WORKERS = "TOO_MANY_WORKERS"


class AdmissionRefused(ResourcesError):
    """Raised by ``Admission.admit`` and ``Admission.disk_admission`` when a worker or a
    download would not fit; nothing was reserved.

    ``code`` says what is missing; ``required_bytes``, ``available_bytes`` and
    ``reserve_bytes`` are the figures the decision compared (None where the refusal came
    before any figure, as for an unknown device); ``devices`` lists the devices there are.
    """

    def __init__(
        self,
        code: RefusalCode,
        message: str,
        *,
        required_bytes: int | None = None,
        available_bytes: int | None = None,
        reserve_bytes: int | None = None,
        devices: Sequence[DeviceRef] = (),
        basis: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.required_bytes = required_bytes
        self.available_bytes = available_bytes
        self.reserve_bytes = reserve_bytes
        self.devices: tuple[DeviceRef, ...] = tuple(devices)
        self.basis = basis
        self.path = path
