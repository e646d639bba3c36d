"""How much memory a worker will need: the settings, the rule, and measured figures."""

from __future__ import annotations

import enum
import math
from datetime import datetime
from typing import Any

import attrs

from rbee_hive_resources._sizes import GiB, MiB, describe_bytes
from rbee_hive_resources._values import Backend


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"admission setting {attribute.name} must be 0 or more bytes; got {value}")


def _factor(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value < 1.0:
        raise ValueError(
            f"admission setting {attribute.name} must be a number of at least 1.0 (a worker "
            f"holds at least its weights); got {value}"
        )


def _worker_cap(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(
            f"admission setting {attribute.name} must be 1 or more, or None for no limit; "
            f"got {value}"
        )


@attrs.frozen(kw_only=True)
class AdmissionSettings:
    """The estimate rule's constants, the reserves kept free, and the per-device worker cap.

    Estimate of a model of ``S`` bytes (see the README): ``ceil(S * weights_factor)`` plus
    ``cpu_overhead_bytes`` on ``cpu``, or plus ``gpu_context_bytes + gpu_kv_bytes`` on
    ``cuda`` and ``metal``. A worker fits when estimate + reserve <= what is available.
    """

    weights_factor: float = attrs.field(default=1.1, validator=_factor)
    """Weights as loaded, per byte of model file (1.1 for gguf: a little beyond the file)."""
    cpu_overhead_bytes: int = attrs.field(default=512 * MiB, validator=_non_negative)
    """RAM a CPU worker needs beyond its weights: runtime, context, KV cache, scratch."""
    gpu_context_bytes: int = attrs.field(default=512 * MiB, validator=_non_negative)
    """VRAM a CUDA context takes (measured on an H200: about 518 MiB)."""
    gpu_kv_bytes: int = attrs.field(default=512 * MiB, validator=_non_negative)
    """VRAM for the KV cache and compute buffers beyond the weights."""
    ram_reserve_bytes: int = attrs.field(default=2 * GiB, validator=_non_negative)
    """RAM that admission keeps free for the host."""
    vram_reserve_bytes: int = attrs.field(default=1 * GiB, validator=_non_negative)
    """VRAM that admission keeps free on every GPU."""
    disk_reserve_bytes: int = attrs.field(default=1 * GiB, validator=_non_negative)
    """Disk space that ``disk_admission`` keeps free after a download."""
    max_workers_per_device: int | None = attrs.field(default=8, validator=_worker_cap)
    """Workers admitted on one device (the CPU is one device); None for no limit."""


class Basis(enum.StrEnum):
    """Where a required figure came from; the value is the wire spelling."""

    MEASURED = "measured"
    """What a ready worker of that model and backend really used."""
    ESTIMATED = "estimated"
    """The rule of ``AdmissionSettings`` applied to the model's size."""


@attrs.frozen(kw_only=True)
class Measurement:
    """What a ready worker of ``model_ref`` on ``backend`` really held (VRAM for cuda, RSS
    otherwise)."""

    model_ref: str
    backend: Backend
    used_bytes: int
    measured_at: datetime


@attrs.frozen(kw_only=True)
class Estimate:
    """The memory a worker is expected to need, where the figure came from, and how it was
    reached (for messages)."""

    required_bytes: int
    basis: Basis
    detail: str


def estimate_worker(model_size: int, backend: Backend, settings: AdmissionSettings) -> Estimate:
    """The rule: weights times the factor, plus the backend's fixed overhead."""
    weights = math.ceil(model_size * settings.weights_factor)
    if backend is Backend.CPU:
        overhead = settings.cpu_overhead_bytes
        overhead_text = f"{describe_bytes(overhead)} runtime"
    else:
        overhead = settings.gpu_context_bytes + settings.gpu_kv_bytes
        overhead_text = (
            f"{describe_bytes(settings.gpu_context_bytes)} GPU context + "
            f"{describe_bytes(settings.gpu_kv_bytes)} KV cache"
        )
    return Estimate(
        required_bytes=weights + overhead,
        basis=Basis.ESTIMATED,
        detail=(
            f"estimated: {settings.weights_factor:g} x {describe_bytes(model_size)} model "
            f"+ {overhead_text}"
        ),
    )


def measured_need(measurement: Measurement) -> Estimate:
    """A measured figure, as the need of the next worker of that model and backend."""
    return Estimate(
        required_bytes=measurement.used_bytes,
        basis=Basis.MEASURED,
        detail=(
            f"measured: a worker of this model used {describe_bytes(measurement.used_bytes)} "
            f"at {measurement.measured_at:%Y-%m-%d %H:%M:%S %Z}"
        ),
    )
