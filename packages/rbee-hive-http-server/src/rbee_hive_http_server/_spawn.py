"""The spawn flow: model reference -> local file (or download) -> admission -> supervisor.

This is the seam the issue asks for: spawn asks one place "where is this model", the
provisioner answers with a path or a download, and the supervisor never sees a reference it
cannot run. A spawn answers at once; a model that is not cached yet keeps its worker in
``provisioning`` until the download ends.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio
import attrs
from anyio.abc import TaskGroup

from rbee_hive_monitor import (
    LaunchFailed,
    Supervisor,
    SupervisorClosed,
    UnknownWorker,
    WorkerConflict,
    WorkerSpec,
)
from rbee_hive_provisioner import DownloadFailed, LocalModel, ModelRef, Provisioner
from rbee_hive_registry import ChangeKind, WorkerEvent, WorkerInfo, WorkerRegistry, WorkerState

log = logging.getLogger("rbee_hive.spawn")


class AdmissionGate(Protocol):
    """Resources' answer to "does it fit"; reserves until ``release``."""

    def resolve_device(self, backend: str, device: int | str) -> Admitted:
        """Check the backend is here and the device exists (by index or UUID); say which
        index it is and what env pins the worker to it. Raises a refusal with ``code``."""
        ...

    def admit(
        self, *, worker_id: str, model_ref: str, model_size: int, backend: str, device: int
    ) -> None:
        """Reserve room for the worker or raise a refusal carrying ``code`` and figures."""
        ...

    def release(self, worker_id: str) -> None:
        """Drop the worker's reservation (it stopped, or its measurement replaced it)."""
        ...

    def worker_ready(self, worker: WorkerInfo) -> None:
        """The worker is serving: measure what it really uses and remember it."""
        ...


@attrs.frozen
class Admitted:
    """A granted admission: the device index to run on and the env the worker gets."""

    device_index: int
    env: Mapping[str, str] = attrs.field(factory=dict)


class OpenAdmission:
    """Admission that admits everything on the device asked for (no resources wired)."""

    def resolve_device(self, backend: str, device: int | str) -> Admitted:
        """Take an index as it is; a UUID cannot be resolved without GPU inventory."""
        if not isinstance(device, int):
            raise ValueError("a device by UUID needs GPU inventory, which is not wired here")
        return Admitted(device_index=device)

    def admit(
        self, *, worker_id: str, model_ref: str, model_size: int, backend: str, device: int
    ) -> None:
        """Admit everything."""

    def release(self, worker_id: str) -> None:
        """Nothing was reserved."""

    def worker_ready(self, worker: WorkerInfo) -> None:
        """Nothing to measure."""


@attrs.frozen
class SpawnRequest:
    """A validated spawn: what the HTTP edge hands to ``SpawnService.spawn``."""

    model_ref: ModelRef
    backend: str
    device: int | str
    engine: str


@attrs.define
class SpawnService:
    """Runs the spawn flow and owns the background work it starts (downloads to wait for,
    measurements after ready). Start ``run`` in the daemon's task group before serving."""

    registry: WorkerRegistry
    supervisor: Supervisor
    provisioner: Provisioner
    admission: AdmissionGate = attrs.field(factory=OpenAdmission)
    new_id: Callable[[], str] = attrs.field(default=lambda: f"worker-{uuid.uuid4()}")
    _tg: TaskGroup | None = attrs.field(default=None, init=False)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the background tasks until cancelled; follow the registry for ready and ended
        workers so reservations are measured and released."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            with self.registry.subscribe() as feed:
                task_status.started()
                try:
                    async for item in feed:
                        if isinstance(item, WorkerEvent):
                            self._follow(item)
                finally:
                    self._tg = None

    def _follow(self, event: WorkerEvent) -> None:
        worker, previous = event.worker, event.previous
        if event.kind is ChangeKind.REMOVED:
            self.admission.release(worker.id)
            return
        if previous is None or previous.state is worker.state:
            return
        if worker.state is WorkerState.IDLE and previous.state is WorkerState.LOADING:
            try:
                self.admission.worker_ready(worker)
            except Exception:
                log.exception("could not measure worker %s after it became ready", worker.id)
        elif worker.state.is_terminal:
            self.admission.release(worker.id)

    async def spawn(self, request: SpawnRequest) -> WorkerInfo:
        """Start a worker for ``request``: at once when the model is local, else register it
        in ``provisioning`` and start it when its download completes."""
        if self._tg is None:
            raise RuntimeError("SpawnService.run is not running; the daemon wires it first")
        worker_id = self.new_id()
        pinned = self.admission.resolve_device(request.backend, request.device)
        spec = WorkerSpec(
            model_ref=str(request.model_ref),
            backend=request.backend,
            device=pinned.device_index,
            engine=request.engine,
            env=dict(pinned.env),
            worker_id=worker_id,
        )
        local = await self.provisioner.lookup(request.model_ref)
        if local is None:
            ticket = await self.provisioner.start_download(request.model_ref)
            local = ticket.cached  # it may have finished between lookup and start_download
            if local is None:
                worker = self.supervisor.register(spec)
                log.info(
                    "worker %s waits for download %s of %s",
                    worker_id,
                    ticket.download_id,
                    request.model_ref,
                )
                self._tg.start_soon(self._after_download, worker_id, ticket.download_id, spec)
                return worker
        self._admit(spec, local)
        try:
            return await self.supervisor.spawn(spec, local.path)
        except BaseException:
            self.admission.release(worker_id)
            raise

    async def _after_download(self, worker_id: str, download_id: str, spec: WorkerSpec) -> None:
        # This task is the boundary for one provisioning worker: whatever goes wrong ends in
        # that worker's record (FAILED with the reason), never in the daemon's task group.
        try:
            await self._start_when_downloaded(worker_id, download_id, spec)
        except Exception as err:
            log.exception("worker %s: provisioning ended in an unexpected error", worker_id)
            self.admission.release(worker_id)
            self._fail(worker_id, f"provisioning failed: {type(err).__name__}: {err}")

    async def _start_when_downloaded(
        self, worker_id: str, download_id: str, spec: WorkerSpec
    ) -> None:
        try:
            local = await self.provisioner.wait(download_id)
        except DownloadFailed as err:
            self._fail(worker_id, f"model download failed ({err.code}): {err}")
            return
        current = self.registry.get(worker_id)
        if current is None or current.state is not WorkerState.PROVISIONING:
            return  # stopped while downloading
        try:
            self._admit(spec, local)
        except Exception as err:
            self._fail(worker_id, f"not admitted after the download: {err}")
            return
        try:
            await self.supervisor.start(worker_id, local.path)
        except LaunchFailed as err:
            self.admission.release(worker_id)  # the supervisor left it FAILED with the reason
            log.error("worker %s could not be started after its download: %s", worker_id, err)
        except (UnknownWorker, WorkerConflict, SupervisorClosed):
            self.admission.release(worker_id)  # stopped meanwhile, or the hive is stopping

    def _fail(self, worker_id: str, reason: str) -> None:
        try:
            self.supervisor.fail(worker_id, reason)
        except (UnknownWorker, WorkerConflict, SupervisorClosed):
            return
        log.error("worker %s failed: %s", worker_id, reason)

    def _admit(self, spec: WorkerSpec, local: LocalModel) -> None:
        assert spec.worker_id is not None
        self.admission.admit(
            worker_id=spec.worker_id,
            model_ref=spec.model_ref,
            model_size=local.size,
            backend=spec.backend,
            device=spec.device,
        )
