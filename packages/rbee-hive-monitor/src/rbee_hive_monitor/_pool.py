"""``WorkerPool``: the spawn flow, the model-in-use rule and admission bookkeeping, in one room.

A spawn goes: model reference -> local file (or a download) -> placement and admission
(resources) -> launch (the supervisor). The pool follows the registry's change feed so that
every worker that ends gives its admission back, a worker that becomes ready is measured, and
a worker it did not spawn (adopted after a hive restart) is counted on its device. When the
feed reports that the pool lagged behind, it resynchronises from a snapshot of the registry.

The HTTP layer only turns requests into pool calls and the pool's errors into answers; the
daemon builds the pool and hands it the audit trail and the counters.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc
import attrs

from rbee_hive_monitor._settings import WorkerSpec
from rbee_hive_monitor._stop import StopOutcome
from rbee_hive_monitor._supervisor import Supervisor
from rbee_hive_monitor.exceptions import (
    LaunchFailed,
    ModelInUse,
    SupervisorClosed,
    UnknownWorker,
    WorkerConflict,
)
from rbee_hive_provisioner import CatalogEntry, DownloadFailed, LocalModel, ModelRef, Provisioner
from rbee_hive_registry import (
    ChangeKind,
    FeedLagged,
    WorkerEvent,
    WorkerInfo,
    WorkerRegistry,
    WorkerState,
)
from rbee_hive_resources import Admission, AdmissionRefused

log = logging.getLogger("rbee_hive.pool")

T = TypeVar("T")


class AuditTrail(Protocol):
    """Where the pool records what it did: ``worker.spawn`` (accepted/refused),
    ``worker.stop`` and ``worker.kill``, ``model.remove``."""

    def record(self, event: str, *, outcome: str, details: dict[str, Any]) -> None:
        """Append one audit record; must not raise."""
        ...


class SpawnCounters(Protocol):
    """The counters a spawn moves (``rbee_hive_metrics.HiveMetrics`` has these)."""

    def count_spawn(self, outcome: str) -> None:
        """One spawn ended with ``outcome`` (the pool reports ``refused``)."""
        ...

    def count_admission_refusal(self, code: str) -> None:
        """Admission refused a worker with ``code``."""
        ...


@attrs.frozen
class SpawnRequest:
    """A spawn as the HTTP edge validated it: the model reference as given, the backend, the
    device (an index, or a GPU UUID on ``cuda``) and the engine."""

    model_ref: str
    backend: str
    device: int | str
    engine: str


@attrs.frozen
class StoppedWorker:
    """How a stop ended, and the worker's last record (it is no longer registered)."""

    outcome: StopOutcome
    last: WorkerInfo


@attrs.frozen
class Resync:
    """What a resynchronisation from the registry's snapshot changed."""

    released: tuple[str, ...] = ()
    """Workers that were gone or ended: their admission was given back."""
    adopted: tuple[str, ...] = ()
    """Running workers with no admission (adopted after a restart): now counted."""
    measured: tuple[str, ...] = ()
    """Ready workers whose reservation still held memory: measured now."""


_ADOPTABLE = frozenset(
    {WorkerState.LOADING, WorkerState.IDLE, WorkerState.BUSY, WorkerState.STOPPING}
)
"""Live states in which a worker must hold an admission (a provisioning one holds none until
its model is here)."""


def _code_of(err: BaseException) -> str:
    return str(getattr(err, "code", None) or "INTERNAL_ERROR")


@attrs.define
class WorkerPool:
    """Spawns, stops and accounts for workers; see the module docstring.

    Start ``run`` in the daemon's task group before serving: it owns the background work
    (downloads to wait for) and follows the registry. ``feed_capacity`` sizes its change-feed
    buffer (None: the registry's default); a full buffer makes it resynchronise, not leak.
    """

    registry: WorkerRegistry
    supervisor: Supervisor
    provisioner: Provisioner
    admission: Admission
    audit: AuditTrail | None = None
    counters: SpawnCounters | None = None
    new_id: Callable[[], str] = attrs.field(default=lambda: f"worker-{uuid.uuid4()}")
    feed_capacity: int | None = None
    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _models: anyio.Lock = attrs.field(factory=anyio.Lock, init=False)
    """Held while a spawn decides on a local model file and registers its worker, and while
    a model removal checks for users and deletes: neither sees the other half-done."""

    # ------------------------------------------------------------------ following

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the background tasks until cancelled; follow the registry so admissions are
        released, measured and adopted as workers change."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            with self.registry.subscribe(self.feed_capacity) as feed:
                self.resync()  # workers registered before the pool ran (adopted ones)
                task_status.started()
                try:
                    async for item in feed:
                        if isinstance(item, FeedLagged):
                            done = self.resync()
                            log.warning(
                                "the pool missed %d registry changes; resynchronised from the "
                                "worker list: released %d admission(s), adopted %d, measured %d",
                                item.missed,
                                len(done.released),
                                len(done.adopted),
                                len(done.measured),
                            )
                        else:
                            self._follow(item)
                finally:
                    self._tg = None

    def resync(self) -> Resync:
        """Make admissions match the registry now: give back those of workers that are gone
        or ended, count running workers that hold none, measure ready ones still holding
        their estimate. Safe to call at any time."""
        live = {w.id: w for w in self.registry.list() if not w.state.is_terminal}
        reserved = {r.worker_id: r for r in self.admission.reservations()}
        released = [wid for wid in reserved if wid not in live]
        for worker_id in released:
            self.admission.release(worker_id)
        adopted: list[str] = []
        measured: list[str] = []
        for worker in live.values():
            reservation = reserved.get(worker.id)
            if reservation is None:
                if self._adopt(worker):
                    adopted.append(worker.id)
            elif reservation.holds_memory and worker.state.is_ready and self._measure(worker):
                measured.append(worker.id)
        return Resync(tuple(released), tuple(adopted), tuple(measured))

    def _follow(self, event: WorkerEvent) -> None:
        worker, previous = event.worker, event.previous
        if event.kind is ChangeKind.REMOVED or worker.state.is_terminal:
            self.admission.release(worker.id)
            return
        if (
            worker.state is WorkerState.IDLE
            and previous is not None
            and previous.state is WorkerState.LOADING
        ):
            self._measure(worker)
        elif worker.state in _ADOPTABLE and self.admission.reservation(worker.id) is None:
            current = self.registry.get(worker.id)  # the event may be older than the worker
            if current is not None and current.state in _ADOPTABLE:
                self._adopt(current)

    def _adopt(self, worker: WorkerInfo) -> bool:
        if worker.state not in _ADOPTABLE:
            return False
        try:
            self.admission.adopt(worker.id, worker.model_ref, worker.backend, worker.device)
        except Exception as err:
            log.warning(
                "worker %s runs on %s:%s, which admission cannot count: %s",
                worker.id,
                worker.backend,
                worker.device,
                err,
            )
            return False
        log.info("worker %s (not spawned by this hive) counted on %s", worker.id, worker.backend)
        return True

    def _measure(self, worker: WorkerInfo) -> bool:
        if worker.pid is None:
            return False
        try:
            measured = self.admission.measure_worker(
                worker.id, worker.model_ref, worker.backend, worker.device, worker.pid
            )
        except Exception:
            log.exception("could not measure worker %s after it became ready", worker.id)
            return False
        if measured is None:
            return False
        log.info(
            "worker %s (%s on %s) uses %d bytes; later admissions of this model use that",
            worker.id,
            worker.model_ref,
            worker.backend,
            measured.used_bytes,
        )
        return True

    # ------------------------------------------------------------------ spawning

    async def spawn(self, request: SpawnRequest) -> WorkerInfo:
        """Start a worker for ``request``: at once when the model is local, else register it
        in ``provisioning`` and start it when its download completes.

        Raises what refused it, each with a stable ``code``: ``InvalidModelRef`` and the
        provisioner's errors, ``AdmissionRefused``, the supervisor's ``UnknownEngine``,
        ``EngineUnavailable`` (before any download), ``NoFreePort``, ``LaunchFailed``,
        ``SupervisorClosed``. Every refusal is audited.
        """
        try:
            worker = await self._spawn(request)
        except Exception as err:
            code = _code_of(err)
            shown = ascii(request.model_ref)[:200]
            log.warning(
                "spawn of %s on %s:%s refused: %s %s",
                shown,
                request.backend,
                request.device,
                code,
                err,
            )
            self._record("worker.spawn", "refused", {"model_ref": shown, "code": code})
            raise
        self._record(
            "worker.spawn",
            "accepted",
            {"worker_id": worker.id, "model_ref": worker.model_ref, "pid": worker.pid},
        )
        return worker

    async def _spawn(self, request: SpawnRequest) -> WorkerInfo:
        tg = self._tg
        if tg is None:
            raise RuntimeError("WorkerPool.run is not running; the daemon starts it first")
        ref = ModelRef.parse(request.model_ref)
        # An engine that cannot run here (llm-worker-rbee not installed) refuses the spawn
        # now, with what to install, instead of after a download and a crash loop.
        self.supervisor.check_engine(request.engine)
        placement = self._counted(lambda: self.admission.place(request.backend, request.device))
        spec = WorkerSpec(
            model_ref=str(ref),
            backend=placement.backend.value,
            device=placement.device,
            engine=request.engine,
            env=dict(placement.env),
            worker_id=self.new_id(),
        )
        for _ in range(3):  # a model removed between "cached" and the lookup: look again
            async with self._models:
                local = await self.provisioner.lookup(ref)
                if local is not None:
                    worker = self._admit_and_register(spec, local)
                    break
            ticket = await self.provisioner.start_download(ref)
            if ticket.cached is None:
                worker = self.supervisor.register(spec)
                log.info(
                    "worker %s waits for download %s of %s",
                    worker.id,
                    ticket.download_id,
                    ref,
                )
                tg.start_soon(self._after_download, worker.id, ticket.download_id, spec)
                return worker
        else:
            raise RuntimeError(f"model {ref} keeps being removed while a worker is spawned")
        try:
            return await self.supervisor.start(worker.id, local.path, forget_on_failure=True)
        except BaseException:
            self.admission.release(worker.id)
            raise

    def _admit_and_register(self, spec: WorkerSpec, local: LocalModel) -> WorkerInfo:
        self._admit(spec, local)
        try:
            return self.supervisor.register(spec)
        except BaseException:
            assert spec.worker_id is not None
            self.admission.release(spec.worker_id)
            raise

    def _admit(self, spec: WorkerSpec, local: LocalModel) -> None:
        assert spec.worker_id is not None
        worker_id = spec.worker_id
        self._counted(
            lambda: self.admission.admit(
                spec.model_ref, local.size, spec.backend, spec.device, worker_id
            )
        )

    def _counted(self, decide: Callable[[], T]) -> T:
        try:
            return decide()
        except AdmissionRefused as err:
            if self.counters is not None:
                self.counters.count_admission_refusal(str(err.code))
                self.counters.count_spawn("refused")
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

    # ------------------------------------------------------------------ stopping

    async def stop(self, worker_id: str, reason: str = "stopped through the API") -> StoppedWorker:
        """Stop a worker for good (never restarted), forget it and give its admission back.
        Raises ``UnknownWorker`` or ``WorkerConflict``."""
        outcome = await self.supervisor.stop(worker_id, reason=reason)
        last = self.supervisor.forget(worker_id)
        self.admission.release(worker_id)
        details = {"worker_id": worker_id, "pid": last.pid, "exit_code": last.exit_code}
        self._record("worker.stop", outcome.value, details)
        if outcome is StopOutcome.FORCED:  # it ignored its graceful signal and was SIGKILLed
            self._record("worker.kill", "killed", details)
        return StoppedWorker(outcome, last)

    # ------------------------------------------------------------------ models

    def users_of(self, text: str, ref: ModelRef, local: LocalModel | None) -> list[str]:
        """Ids of live workers that use the model: named by ``text`` or its canonical form,
        or running its local file."""
        names = {text, str(ref)}
        path = None if local is None else str(local.path)
        return [
            w.id
            for w in self.registry.list()
            if not w.state.is_terminal
            and (w.model_ref in names or (path is not None and w.model_path == path))
        ]

    async def remove_model(self, text: str) -> CatalogEntry:
        """Remove a model from the catalog (and its file when nothing else links to it).
        Raises ``ModelInUse`` while a live worker uses it, ``InvalidModelRef`` or
        ``ModelNotInCatalog``."""
        ref = ModelRef.parse(text)
        async with self._models:
            local = await self.provisioner.lookup(ref)
            users = self.users_of(text, ref, local)
            if users:
                raise ModelInUse(str(ref), users)
            entry = await self.provisioner.remove(ref)
        self._record("model.remove", "removed", {"model_ref": entry.reference})
        return entry

    # ------------------------------------------------------------------ internals

    def _record(self, event: str, outcome: str, details: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.record(event, outcome=outcome, details=details)
