"""Admission: would a worker fit, and a reservation for it while it loads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from rbee_hive_resources._estimate import (
    AdmissionSettings,
    Basis,
    Estimate,
    Measurement,
    estimate_worker,
    measured_need,
)
from rbee_hive_resources._host import HostResources, describe_gpus
from rbee_hive_resources._placement import Placement
from rbee_hive_resources._sizes import describe_bytes
from rbee_hive_resources._values import Backend, DeviceRef, GpuInventory
from rbee_hive_resources.exceptions import (
    AdmissionRefused,
    DeviceNotFound,
    RefusalCode,
    SizeUnknown,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class Reservation:
    """A worker admitted on a device.

    While ``holds_memory`` is true (the worker is loading), ``required_bytes`` counts
    against the device's free memory in every later decision; once the worker is measured
    (or was adopted running) its memory shows in the live readings and only its slot on
    the device still counts. ``device`` is the NVML index for cuda and 0 otherwise.
    """

    worker_id: str
    model_ref: str
    backend: Backend
    device: int
    gpu_uuid: str | None
    required_bytes: int
    basis: Basis
    reserved_at: datetime
    holds_memory: bool = True

    @property
    def placement(self) -> Placement:
        """Where the worker was admitted, and the env that pins it there."""
        return Placement(backend=self.backend, device=self.device, gpu_uuid=self.gpu_uuid)

    @property
    def cuda_visible_devices(self) -> str | None:
        """``Placement.cuda_visible_devices`` of the worker's placement."""
        return self.placement.cuda_visible_devices

    @property
    def worker_env(self) -> dict[str, str]:
        """``Placement.env`` of the worker's placement."""
        return dict(self.placement.env)


@attrs.frozen(kw_only=True)
class CapacityAnswer:
    """Would a worker fit, and why (not): the figures compared and the devices there are.

    ``available_bytes`` is free memory now (``MemAvailable`` or NVML free VRAM) minus
    ``held_bytes``, the reservations of workers still loading; a worker fits when
    ``required_bytes + reserve_bytes <= available_bytes``. Figures are None where the
    decision stopped before them (an unknown backend or device).
    """

    fits: bool
    code: RefusalCode | None
    message: str
    model_ref: str
    backend: str
    device: int | None
    gpu_uuid: str | None
    required_bytes: int | None
    available_bytes: int | None
    reserve_bytes: int | None
    held_bytes: int
    basis: Basis | None
    workers_on_device: int
    max_workers_per_device: int | None
    devices: tuple[DeviceRef, ...]

    def refusal(self) -> AdmissionRefused:
        """The ``AdmissionRefused`` this answer stands for (only when it does not fit)."""
        if self.code is None:
            raise ValueError("a worker that fits is not refused")
        return AdmissionRefused(
            self.code,
            self.message,
            required_bytes=self.required_bytes,
            available_bytes=self.available_bytes,
            reserve_bytes=self.reserve_bytes,
            devices=self.devices,
            basis=None if self.basis is None else self.basis.value,
        )


@attrs.frozen
class _Spot:
    """Where the decision placed the worker, with what it needs of that device to decide."""

    placement: Placement
    gpu_name: str | None
    free_bytes: int

    @property
    def backend(self) -> Backend:
        return self.placement.backend

    @property
    def device(self) -> int:
        return self.placement.device

    @property
    def gpu_uuid(self) -> str | None:
        return self.placement.gpu_uuid


class _Unplaceable(Exception):
    """A backend or device that is not here: the refusal's code and message."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Admission:
    """Decides whether workers fit and keeps a reservation for each admitted worker.

    Decisions and reservations happen under one lock, so two admissions racing for the
    same free memory cannot both pass. Life of a worker, as the daemon should call it:
    ``admit`` before launch; ``record_measurement(..., worker_id=...)`` once it is ready
    (its memory now shows in the readings, so the reservation stops holding memory, and
    later admissions of that model use the measured figure); ``release`` when it stops.
    """

    def __init__(
        self,
        host: HostResources,
        settings: AdmissionSettings | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._host = host
        self._settings = settings if settings is not None else AdmissionSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._reservations: dict[str, Reservation] = {}
        self._measurements: dict[tuple[str, Backend], Measurement] = {}

    def __repr__(self) -> str:
        loading = sum(r.holds_memory for r in self._reservations.values())
        return (
            f"<Admission workers={len(self._reservations)} loading={loading} "
            f"measured_models={len(self._measurements)}>"
        )

    @property
    def settings(self) -> AdmissionSettings:
        """The settings in force."""
        return self._settings

    def place(self, backend: Backend | str, device: int | str = 0) -> Placement:
        """Where a worker of ``backend`` asked for ``device`` (an NVML index, a GPU UUID on
        ``cuda``; 0 elsewhere) runs, and the env that pins it there. Checks only that the
        backend and the device are here; ``admit`` decides whether it fits. Raises
        ``AdmissionRefused`` with code ``BACKEND_UNAVAILABLE`` or ``INVALID_DEVICE``."""
        inventory = self._host.gpus()
        try:
            name = self._backend(backend, inventory)
            return self._spot(name, device, inventory).placement
        except _Unplaceable as err:
            raise AdmissionRefused(
                err.code, err.message, devices=self._devices(inventory)
            ) from None

    def estimate(self, model_ref: str, model_size: int | None, backend: Backend) -> Estimate:
        """The measured figure of this model on this backend if there is one, else the rule
        applied to ``model_size``; raises ``SizeUnknown`` when neither is known."""
        with self._lock:
            return self._need(model_ref, model_size, backend)

    def capacity(
        self,
        model_ref: str,
        model_size: int | None,
        backend: Backend | str,
        device: int | str = 0,
    ) -> CapacityAnswer:
        """Would a worker of this model fit on this backend and device now? Reserves nothing."""
        with self._lock:
            return self._decide(model_ref, model_size, backend, device, worker_id=None)

    def admit(
        self,
        model_ref: str,
        model_size: int | None,
        backend: Backend | str,
        device: int | str,
        worker_id: str,
    ) -> Reservation:
        """Reserve room for the worker, or raise ``AdmissionRefused`` (nothing reserved).

        Admitting a ``worker_id`` that already holds a reservation (a restart) replaces it:
        its old reservation is not counted against itself. Raises ``SizeUnknown`` when
        ``model_size`` is None and the model was never measured on this backend.
        """
        with self._lock:
            answer = self._decide(model_ref, model_size, backend, device, worker_id=worker_id)
            if not answer.fits:
                raise answer.refusal()
            assert answer.device is not None
            assert answer.required_bytes is not None
            assert answer.basis is not None
            reservation = Reservation(
                worker_id=worker_id,
                model_ref=model_ref,
                backend=Backend(answer.backend),
                device=answer.device,
                gpu_uuid=answer.gpu_uuid,
                required_bytes=answer.required_bytes,
                basis=answer.basis,
                reserved_at=self._clock(),
            )
            self._reservations[worker_id] = reservation
            return reservation

    def adopt(
        self, worker_id: str, model_ref: str, backend: Backend | str, device: int | str
    ) -> Reservation:
        """Count a worker that is already running (adopted after a hive restart) on its
        device, without a check and without holding memory: its memory is in the readings.
        Raises ``DeviceNotFound`` for a GPU that is not there."""
        backend = Backend(backend)
        with self._lock:
            uuid = None
            index = 0
            if backend is Backend.CUDA:
                gpu = self._host.resolve_gpu(device)
                index, uuid = gpu.index, gpu.uuid
            measured = self._measurements.get((model_ref, backend))
            reservation = Reservation(
                worker_id=worker_id,
                model_ref=model_ref,
                backend=backend,
                device=index,
                gpu_uuid=uuid,
                required_bytes=0 if measured is None else measured.used_bytes,
                basis=Basis.ESTIMATED if measured is None else Basis.MEASURED,
                reserved_at=self._clock(),
                holds_memory=False,
            )
            self._reservations[worker_id] = reservation
            return reservation

    def record_measurement(
        self,
        model_ref: str,
        backend: Backend | str,
        used_bytes: int,
        *,
        worker_id: str | None = None,
    ) -> Measurement:
        """Remember what a ready worker of this model really used; later admissions of the
        model on this backend use it instead of the estimate (the latest figure wins).
        With ``worker_id``, that worker's reservation stops holding memory (it keeps its
        slot on the device)."""
        if used_bytes <= 0:
            raise ValueError(
                f"a measured worker uses more than 0 bytes; got {used_bytes} for {model_ref!r}"
            )
        measurement = Measurement(
            model_ref=model_ref,
            backend=Backend(backend),
            used_bytes=used_bytes,
            measured_at=self._clock(),
        )
        with self._lock:
            self._measurements[(model_ref, measurement.backend)] = measurement
            if worker_id is not None and worker_id in self._reservations:
                self._reservations[worker_id] = attrs.evolve(
                    self._reservations[worker_id], holds_memory=False
                )
        return measurement

    def measurement(self, model_ref: str, backend: Backend | str) -> Measurement | None:
        """The measured figure of this model on this backend, if any."""
        with self._lock:
            return self._measurements.get((model_ref, Backend(backend)))

    def measure_worker(
        self, worker_id: str, model_ref: str, backend: Backend | str, device: int, pid: int
    ) -> Measurement | None:
        """Measure a worker that became ready (its VRAM on ``cuda``, its resident RAM
        otherwise) and ``record_measurement`` it for its model, which also stops its
        reservation holding memory. None when the host cannot tell (process not found)."""
        used = self._host.measure_worker(pid, backend, device)
        if not used:
            return None
        return self.record_measurement(model_ref, backend, used, worker_id=worker_id)

    def reservation(self, worker_id: str) -> Reservation | None:
        """The worker's reservation, if it holds one."""
        with self._lock:
            return self._reservations.get(worker_id)

    def release(self, worker_id: str) -> Reservation | None:
        """Forget the worker (it stopped, failed, or was never launched): its memory and its
        slot are free again. Returns what it held; None if it held nothing."""
        with self._lock:
            return self._reservations.pop(worker_id, None)

    def reservations(self) -> tuple[Reservation, ...]:
        """Every worker admitted and not released, in admission order."""
        with self._lock:
            return tuple(self._reservations.values())

    def disk_admission(self, folder: Path, needed_bytes: int) -> None:
        """Return if ``needed_bytes`` more can be written under ``folder`` and leave the disk
        reserve free; else raise ``AdmissionRefused`` with code ``INSUFFICIENT_DISK``."""
        reading = self._host.disk(folder)
        reserve = self._settings.disk_reserve_bytes
        if reading.available_bytes - needed_bytes >= reserve:
            return
        raise AdmissionRefused(
            RefusalCode.INSUFFICIENT_DISK,
            f"writing {describe_bytes(needed_bytes)} under {folder} would leave "
            f"{describe_bytes(max(0, reading.available_bytes - needed_bytes))} on its disk, "
            f"less than the {describe_bytes(reserve)} kept free (setting disk_reserve_bytes); "
            f"{describe_bytes(reading.available_bytes)} is available now. Free disk space, "
            "move the models folder, or lower the reserve",
            required_bytes=needed_bytes,
            available_bytes=reading.available_bytes,
            reserve_bytes=reserve,
            path=str(folder),
        )

    # ------------------------------------------------------------------ the decision

    def _need(self, model_ref: str, model_size: int | None, backend: Backend) -> Estimate:
        measured = self._measurements.get((model_ref, backend))
        if measured is not None:
            return measured_need(measured)
        if model_size is None:
            raise SizeUnknown(
                f"cannot size a {backend.value} worker of {model_ref!r}: the model was never "
                "measured on this backend and its file size is not known; download it first"
            )
        return estimate_worker(model_size, backend, self._settings)

    def _decide(
        self,
        model_ref: str,
        model_size: int | None,
        backend_name: Backend | str,
        device: int | str,
        *,
        worker_id: str | None,
    ) -> CapacityAnswer:
        inventory = self._host.gpus()
        devices = self._devices(inventory)

        base = CapacityAnswer(
            fits=False,
            code=None,
            message="",
            model_ref=model_ref,
            backend=str(backend_name),
            device=None,
            gpu_uuid=None,
            required_bytes=None,
            available_bytes=None,
            reserve_bytes=None,
            held_bytes=0,
            basis=None,
            workers_on_device=0,
            max_workers_per_device=self._settings.max_workers_per_device,
            devices=devices,
        )

        def answer(code: RefusalCode | None, message: str, **figures: Any) -> CapacityAnswer:
            return attrs.evolve(base, fits=code is None, code=code, message=message, **figures)

        try:
            backend = self._backend(backend_name, inventory)
        except _Unplaceable as err:
            return answer(err.code, err.message)

        need = self._need(model_ref, model_size, backend)
        figures: dict[str, Any] = {
            "backend": backend.value,
            "required_bytes": need.required_bytes,
            "basis": need.basis,
        }
        try:
            place = self._spot(backend, device, inventory)
        except _Unplaceable as err:
            return answer(err.code, err.message, **figures)
        figures.update(device=place.device, gpu_uuid=place.gpu_uuid)
        where = self._where(place)

        others = [
            r
            for r in self._reservations.values()
            if r.worker_id != worker_id and r.backend is backend and r.device == place.device
        ]
        cap = self._settings.max_workers_per_device
        figures["workers_on_device"] = len(others)
        if cap is not None and len(others) >= cap:
            return answer(
                RefusalCode.TOO_MANY_WORKERS,
                f"{where} already runs {len(others)} workers, the most allowed per device "
                f"(setting max_workers_per_device = {cap}); stop one or choose another device",
                **figures,
            )

        held_by = [
            r
            for r in self._reservations.values()
            if r.worker_id != worker_id and r.holds_memory and _same_pool(r, place)
        ]
        held = sum(r.required_bytes for r in held_by)
        available = max(0, place.free_bytes - held)
        if backend is Backend.CUDA:
            reserve, code, setting, memory = (
                self._settings.vram_reserve_bytes,
                RefusalCode.INSUFFICIENT_VRAM,
                "vram_reserve_bytes",
                "VRAM",
            )
        else:
            reserve, code, setting, memory = (
                self._settings.ram_reserve_bytes,
                RefusalCode.INSUFFICIENT_RAM,
                "ram_reserve_bytes",
                "RAM",
            )
        figures.update(available_bytes=available, reserve_bytes=reserve, held_bytes=held)
        held_text = (
            f" ({describe_bytes(place.free_bytes)} free minus {describe_bytes(held)} held by "
            f"{len(held_by)} loading worker{'s' if len(held_by) != 1 else ''})"
            if held_by
            else ""
        )
        needs = (
            f"{model_ref} needs {describe_bytes(need.required_bytes)} of {memory} on {where} "
            f"({need.detail})"
        )
        if need.required_bytes + reserve <= available:
            return answer(
                None,
                f"{needs}; {describe_bytes(available)} is available{held_text} and "
                f"{describe_bytes(reserve)} is kept in reserve: it fits",
                **figures,
            )
        return answer(
            code,
            f"{needs}, but only {describe_bytes(available)} is available{held_text} and "
            f"{describe_bytes(reserve)} is kept in reserve (setting {setting}); stop a worker, "
            "choose another device, or lower the reserve",
            **figures,
        )

    def _backend(self, backend_name: Backend | str, inventory: GpuInventory) -> Backend:
        """The backend, if rbee-hive knows it and this machine has it."""
        available = sorted(b.backend.value for b in self._host.backends(inventory))
        try:
            backend = Backend(backend_name)
        except ValueError:
            raise _Unplaceable(
                RefusalCode.BACKEND_UNAVAILABLE,
                f"unknown backend {backend_name!r}; rbee-hive knows "
                f"{', '.join(b.value for b in Backend)}, and this machine has "
                f"{', '.join(available)}",
            ) from None
        if backend.value not in available:
            why = f" ({inventory.reason})" if backend is Backend.CUDA and inventory.reason else ""
            raise _Unplaceable(
                RefusalCode.BACKEND_UNAVAILABLE,
                f"backend {backend.value!r} is not available on this machine{why}; "
                f"available: {', '.join(available)}",
            )
        return backend

    def _spot(self, backend: Backend, device: int | str, inventory: GpuInventory) -> _Spot:
        """The one place a device request becomes a placement (GPUs by index or UUID)."""
        if backend is Backend.CUDA:
            try:
                gpu = self._host.resolve_gpu(device, inventory)
            except DeviceNotFound as err:
                raise _Unplaceable(RefusalCode.INVALID_DEVICE, str(err)) from None
            return _Spot(
                placement=Placement(backend=backend, device=gpu.index, gpu_uuid=gpu.uuid),
                gpu_name=gpu.name,
                free_bytes=gpu.memory_free_bytes,
            )
        if isinstance(device, bool) or str(device).strip() != "0":
            raise _Unplaceable(
                RefusalCode.INVALID_DEVICE,
                f"backend {backend.value} has one device, 0 (the whole host); got {device!r}. "
                f"GPUs here (backend cuda): {describe_gpus(inventory.gpus)}",
            )
        return _Spot(
            placement=Placement(backend=backend, device=0),
            gpu_name=None,
            free_bytes=self._host.memory().available_bytes,
        )

    @staticmethod
    def _where(place: _Spot) -> str:
        if place.backend is Backend.CUDA:
            return f"GPU {place.device} ({place.gpu_name}, {place.gpu_uuid})"
        if place.backend is Backend.METAL:
            return "the Metal GPU (unified memory: host RAM)"
        return "the CPU (host RAM)"

    def _devices(self, inventory: GpuInventory) -> tuple[DeviceRef, ...]:
        found: list[DeviceRef] = []
        for info in self._host.backends(inventory):
            if info.backend is Backend.CUDA:
                found.extend(
                    DeviceRef(backend=Backend.CUDA, index=gpu.index, uuid=gpu.uuid, name=gpu.name)
                    for gpu in inventory.gpus
                )
            else:
                label = "host RAM" if info.backend is Backend.CPU else "Apple GPU (unified memory)"
                found.append(DeviceRef(backend=info.backend, index=0, uuid=None, name=label))
        return tuple(found)


def _same_pool(reservation: Reservation, place: _Spot) -> bool:
    """Whether the reservation takes from the memory ``place`` draws on: the same GPU for
    cuda; host RAM for cpu and metal (Apple's unified memory is host RAM)."""
    if place.backend is Backend.CUDA:
        return reservation.backend is Backend.CUDA and reservation.device == place.device
    return reservation.backend in (Backend.CPU, Backend.METAL)
