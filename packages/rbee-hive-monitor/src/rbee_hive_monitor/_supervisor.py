"""The Supervisor: turns a spawn decision into a running, watched, restarted, stopped worker."""

from __future__ import annotations

import contextlib
import logging
import random as _random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from os import PathLike
from pathlib import Path

import anyio
import anyio.abc

from rbee_hive_monitor import _lifecycle as lc
from rbee_hive_monitor._adopt import CallbackRestorer, adopt_survivors
from rbee_hive_monitor._availability import engine_availability
from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._events import LifecycleEvent, LifecycleTotals, WorkerReady
from rbee_hive_monitor._handle import ProcessHandle
from rbee_hive_monitor._http import AiohttpWorkerHttp, WorkerHttp, new_session
from rbee_hive_monitor._ports import PortAllocator
from rbee_hive_monitor._process import WorkerProcess, mask_url
from rbee_hive_monitor._recorder import LaunchDetails, StateRecorder
from rbee_hive_monitor._settings import SupervisorSettings, WorkerSpec
from rbee_hive_monitor._state_file import StateFile
from rbee_hive_monitor._stop import StopOutcome, StopReport
from rbee_hive_monitor._worker import Shared, WorkerCallbacks, WorkerRun, now
from rbee_hive_monitor.exceptions import (
    EngineUnavailable,
    InvalidEngine,
    SupervisorClosed,
    UnknownEngine,
    UnknownWorker,
    WorkerConflict,
    WorkerNotReadyable,
)
from rbee_hive_registry import Subscription, WorkerInfo, WorkerRegistry, WorkerState
from rbee_hive_restart import RestartTracker

log = logging.getLogger("rbee_hive.monitor")

_S = WorkerState
_FINAL_REAP_TIMEOUT = 10.0
"""How long closing the supervisor waits for SIGKILLed processes to be reaped."""


class Supervisor:
    """Launches, watches, restarts and stops the workers of one hive. One per daemon.

    Open it with ``async with Supervisor.open(registry, settings, engines, callbacks=...) as
    sup:``; it owns a task group for its background tasks (per worker: an exit watcher, a
    watch of the current launch, a backoff). Leaving the block kills and reaps every worker
    process that is left. Call its methods from the event loop it was opened in; the
    synchronous ones never block.

    Each worker's decisions are taken by a pure lifecycle core (``_lifecycle.step``); the
    supervisor publishes what happened as typed events (``subscribe``, ``totals``).
    """

    def __init__(self, shared: Shared, engines: dict[str, EngineSpec]) -> None:
        """Use ``Supervisor.open``."""
        self._shared = shared
        self._engines = engines

    def __repr__(self) -> str:
        runs = self._shared.runs.values()
        live = sum(1 for r in runs if r.proc is not None and r.proc.running)
        return (
            f"<Supervisor workers={len(runs)} running={live} engines={sorted(self._engines)} "
            f"closed={self._shared.closed}>"
        )

    @property
    def settings(self) -> SupervisorSettings:
        """The settings it runs with."""
        return self._shared.settings

    @property
    def closed(self) -> bool:
        """True once ``refuse_new`` was called (or the supervisor is closing)."""
        return self._shared.closed

    # ------------------------------------------------------------------ events

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        """Follow every lifecycle event from now on: ``WorkerReady``, ``WorkerCrashed``,
        ``BreakerOpened``, ``WorkerLaunchFailed``, ``WorkerStopped``, ``HealthCheckFailed``.

        Each subscriber has a bounded buffer (``capacity`` events, 1024 by default); when it
        is full the oldest are dropped and a ``FeedLagged`` comes in their place: resync from
        ``totals()`` (counts) or the registry (states). Use it as a context manager.
        """
        return self._shared.subscribe(capacity)

    def totals(self) -> LifecycleTotals:
        """Running totals of every event published so far (``COUNTS``), with the ``seq`` of
        the last one."""
        return self._shared.totals()

    # ------------------------------------------------------------------ lifetime

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        registry: WorkerRegistry,
        settings: SupervisorSettings,
        engines: Iterable[EngineSpec],
        *,
        callbacks: WorkerCallbacks | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        http: WorkerHttp | None = None,
    ) -> AsyncIterator[Supervisor]:
        """Run a supervisor for the duration of the block.

        ``engines`` are the configured engines (names must be unique); ``callbacks`` is
        required when an engine hands its workers a ``{callback_url}``. ``clock`` (monotonic
        seconds) and ``random`` (uniform in [0, 1)) drive the restart bookkeeping (waits and
        timeouts use anyio's clock); ``http`` replaces the aiohttp client in tests. On the way
        out whatever still runs is SIGKILLed and reaped, shielded from cancellation: call
        ``stop_all`` first for a graceful stop.
        """
        engine_map = _engine_map(engines, callbacks)
        _warn_idle_timeout(settings, engine_map.values())
        settings.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = None if settings.state_file is None else StateFile(settings.state_file)
        async with contextlib.AsyncExitStack() as stack:
            if state is not None:
                state.lock()  # StateFileInUse: another hive keeps it
                stack.callback(state.unlock)
            if http is None:
                http = AiohttpWorkerHttp(await stack.enter_async_context(new_session()))
            supervisor: Supervisor | None = None
            recorder: StateRecorder | None = None
            try:
                async with anyio.create_task_group() as tg:
                    shared = Shared(
                        registry=registry,
                        settings=settings,
                        callbacks=callbacks,
                        http=http,
                        task_group=tg,
                        clock=clock,
                        random=random,
                        ports=PortAllocator(*settings.port_range),
                    )
                    supervisor = cls(shared, engine_map)
                    try:
                        if state is not None:
                            recorder = await supervisor._take_back(state)
                        yield supervisor
                    finally:
                        with anyio.move_on_after(_FINAL_REAP_TIMEOUT, shield=True):
                            await supervisor._kill_everything()
                        tg.cancel_scope.cancel()
            finally:
                if supervisor is not None:
                    supervisor._record_hive_stop()
                if recorder is not None:
                    recorder.write_if_changed()  # no task runs now: says that none runs

    def refuse_new(self) -> None:
        """From now on ``register``/``spawn``/``start`` raise ``SupervisorClosed`` and no worker
        is restarted (pending restarts are cancelled; those workers end STOPPED)."""
        if not self._shared.closed:
            log.info("supervisor: refusing new workers and restarts from now on")
        self._shared.closed = True
        for run in list(self._shared.runs.values()):
            run.apply(lc.Close())

    def kill_all_now(self) -> int:
        """SIGKILL every worker's process group at once (a second shutdown signal); returns how
        many were signalled. The exits are reaped and recorded as usual, never restarted."""
        self.refuse_new()
        killed = 0
        for run in self._shared.runs.values():
            if run.proc is not None and run.proc.running:
                run.proc.signal_group(signal.SIGKILL)
                killed += 1
        log.warning("supervisor: sent SIGKILL to the process groups of %d workers", killed)
        return killed

    # ------------------------------------------------------------------ starting

    def check_engine(self, name: str) -> EngineSpec:
        """The engine called ``name`` when it can start workers here; raises ``UnknownEngine``,
        or ``EngineUnavailable`` naming what is not installed and how to install it. Cheap
        (a PATH lookup, a module search, nothing started): the spawn flow asks it first, so a
        spawn on a fresh install fails at once instead of downloading, then crash-looping."""
        engine = self._engines.get(name)
        if engine is None:
            raise UnknownEngine(name, sorted(self._engines))
        found = engine_availability(engine)
        if not found.usable:
            code = found.code or "ENGINE_UNAVAILABLE"
            raise EngineUnavailable(engine.name, found.detail, found.fix, code=code)
        return engine

    def register(self, spec: WorkerSpec) -> WorkerInfo:
        """Register a worker in PROVISIONING (its model may still be downloading) with a port
        reserved for it; ``start`` launches it. Raises ``SupervisorClosed``, ``UnknownEngine``,
        ``WorkerConflict`` (fixed id already used) or ``NoFreePort``."""
        shared = self._shared
        if shared.closed:
            raise SupervisorClosed
        engine = self._engines.get(spec.engine)
        if engine is None:
            raise UnknownEngine(spec.engine, sorted(self._engines))
        worker_id = spec.worker_id or f"worker-{uuid.uuid4()}"
        if worker_id in shared.runs or worker_id in shared.registry:
            raise WorkerConflict(
                worker_id, f"worker id {worker_id!r} is already in use", code="WORKER_EXISTS"
            )
        port = shared.ports.reserve(worker_id, also_taken=shared.ports_in_registry())
        info = shared.registry.register(
            WorkerInfo(
                id=worker_id,
                url=shared.worker_url(port),
                model_ref=spec.model_ref,
                backend=spec.backend,
                device=spec.device,
                state=_S.PROVISIONING,
                last_activity=now(),
                port=port,
                engine=engine.name,
                reason="waiting for its model",
            )
        )
        shared.runs[worker_id] = self._new_run(spec, engine, worker_id, port)
        log.info(
            "worker %s registered: model %s on %s:%d, engine %s, port %d",
            worker_id,
            spec.model_ref,
            spec.backend,
            spec.device,
            engine.name,
            port,
        )
        return info

    async def start(
        self, worker_id: str, model_path: str | PathLike[str], *, forget_on_failure: bool = False
    ) -> WorkerInfo:
        """Launch a PROVISIONING worker (-> LOADING). Returns once the process runs and either
        ``early_exit_grace`` passed without an exit or it became ready. Raises ``LaunchFailed``
        (then nothing runs; the record stays as FAILED with the reason, so whoever was told
        of the worker while its model downloaded can see why, or is removed when
        ``forget_on_failure``), ``SupervisorClosed``, ``UnknownWorker`` or ``WorkerConflict``
        (not provisioning)."""
        if self._shared.closed:
            raise SupervisorClosed
        run = self._run(worker_id)
        info = run.record()
        if info.state is not _S.PROVISIONING or run.model_path is not None:
            raise WorkerConflict(
                worker_id,
                f"worker {worker_id} is {info.state.value}; only a provisioning worker can be "
                "started",
            )
        run.model_path = Path(model_path)
        self._shared.registry.transition(
            worker_id,
            _S.LOADING,
            expected_revision=info.revision,
            model_path=str(run.model_path),
            last_activity=now(),
            reason="launching",
        )
        launch = run.core.launch + 1
        run.apply(lc.Start(forget_on_failure))
        try:
            await run.launch(launch)  # LaunchFailed: the core discarded the worker
            with anyio.move_on_after(self._shared.settings.early_exit_grace):
                await run.settled.wait()
        finally:
            # Also when the caller is cancelled: an early exit must not leave a record behind.
            run.grace_over()
        if run.start_failure is not None:
            log.error("%s", run.start_failure)
            raise run.start_failure
        return run.record()

    def adopt(
        self,
        spec: WorkerSpec,
        proc: ProcessHandle,
        *,
        model_path: str | PathLike[str],
        restart_count: int = 0,
        callback_url: str | None = None,
    ) -> WorkerInfo:
        """Take over a worker whose process already runs and serves, e.g. one that outlived an
        earlier hive: ``spec.worker_id`` is required and ``proc.port`` is its port. It is
        registered IDLE with its pid, its exit is watched (``proc.watch``), its probes resume
        and a ``WorkerReady(adopted=True)`` is published; from then on it is supervised like
        any other (a crash is restarted as a new child). ``callback_url`` is the URL the worker
        reports to, if the callbacks can take it back (``restore``), its heartbeats count
        again. Raises ``SupervisorClosed``, ``UnknownEngine`` or ``WorkerConflict`` (id or port
        in use)."""
        shared = self._shared
        if shared.closed:
            raise SupervisorClosed
        engine = self._engines.get(spec.engine)
        if engine is None:
            raise UnknownEngine(spec.engine, sorted(self._engines))
        worker_id = spec.worker_id
        if worker_id is None:
            raise WorkerConflict("", "an adopted worker needs its id (WorkerSpec.worker_id)")
        if worker_id in shared.runs or worker_id in shared.registry:
            raise WorkerConflict(
                worker_id, f"worker id {worker_id!r} is already in use", code="WORKER_EXISTS"
            )
        if not shared.ports.hold(proc.port, worker_id):
            raise WorkerConflict(worker_id, f"port {proc.port} is held by another worker")
        url = shared.worker_url(proc.port)
        shared.registry.register(
            WorkerInfo(
                id=worker_id,
                url=url,
                model_ref=spec.model_ref,
                backend=spec.backend,
                device=spec.device,
                state=_S.IDLE,
                last_activity=now(),
                port=proc.port,
                engine=engine.name,
                pid=proc.pid,
                started_at=now(),
                model_path=str(model_path),
                restart_count=restart_count,
            )
        )
        run = self._new_run(spec, engine, worker_id, proc.port)
        run.model_path = Path(model_path)
        run.core = lc.Core.adopted_running(
            run.core.identity, launch=restart_count + 1, now=anyio.current_time()
        )
        run.proc = proc
        run.settled.set()
        run.tracker.started()
        run.callback_issued = self._restore_callback(worker_id, callback_url)
        shared.runs[worker_id] = run
        shared.task_group.start_soon(proc.watch, name=f"exit of adopted {worker_id}")
        run.start_watch()
        shared.publish(
            WorkerReady(**lc.stamp(run.core, anyio.current_time()), url=url, adopted=True)
        )
        log.info("worker %s adopted: pid %d, port %d", worker_id, proc.pid, proc.port)
        return run.record()

    async def spawn(self, spec: WorkerSpec, model_path: str | PathLike[str]) -> WorkerInfo:
        """``register`` then ``start``: the model is on disk, launch now."""
        info = self.register(spec)
        return await self.start(info.id, model_path, forget_on_failure=True)

    def fail(self, worker_id: str, reason: str) -> WorkerInfo:
        """A PROVISIONING worker's model could not be provided: -> FAILED with ``reason``."""
        run = self._run(worker_id)
        info = run.record()
        if info.state is not _S.PROVISIONING or run.model_path is not None:
            raise WorkerConflict(
                worker_id,
                f"worker {worker_id} is {info.state.value}; only a provisioning worker can be "
                "failed this way (use stop for a running one)",
            )
        log.error("worker %s failed before launch: %s", worker_id, reason)
        run.apply(lc.ProvisionFailed(reason))
        return run.record()

    # ------------------------------------------------------------------ worker reports

    def mark_ready(self, worker_id: str, *, port: int | None = None) -> WorkerInfo:
        """The ready callback: LOADING -> IDLE, only while the current launch's process runs.

        ``port`` (from the callback's ``url``), if given, must be the current launch's port.
        Raises ``UnknownWorker`` (404) or ``WorkerNotReadyable`` (409): already ready, stopping,
        waiting for a restart, or a stale callback from an earlier process.
        """
        run = self._run(worker_id)
        info = run.record()
        if port is not None and port != run.port:
            raise WorkerNotReadyable(
                worker_id,
                f"worker {worker_id} reported port {port} but its current launch uses port "
                f"{run.port}: a ready callback from an earlier process is ignored",
            )
        proc = run.proc
        alive = proc is not None and proc.running
        url = self._shared.worker_url(run.port)
        refused = [
            a
            for a in run.apply(lc.BecameReady(run.core.launch, alive, url))
            if isinstance(a, lc.Refuse)
        ]
        if refused:
            running = "" if alive else " and no process of it runs"
            raise WorkerNotReadyable(
                worker_id,
                f"worker {worker_id} is {info.state.value}{running}; a ready callback is "
                "accepted only while its current process is loading",
            )
        return run.record()

    def record_heartbeat(self, worker_id: str, *, busy: bool | None = None) -> WorkerInfo:
        """A heartbeat from a running worker; from now on its staleness counts as a failed
        probe. ``busy``, when the heartbeat says (engines with ``activity = "heartbeat"``), is
        the worker's activity: IDLE <-> BUSY, and the idle timeout counts from its last use.
        Raises ``UnknownWorker`` or ``WorkerConflict`` (no process runs)."""
        run = self._run(worker_id)
        info = run.record()
        if run.proc is None or not run.proc.running or info.state.is_terminal:
            raise WorkerConflict(
                worker_id, f"worker {worker_id} is {info.state.value} and runs no process"
            )
        run.last_heartbeat = anyio.current_time()
        info = self._shared.registry.update(
            worker_id, expected_revision=info.revision, last_heartbeat=now()
        )
        if busy is not None and run.engine.activity == "heartbeat":
            run.apply(lc.Activity(busy))
            info = run.record()
        return info

    def mark_busy(self, worker_id: str) -> WorkerInfo:
        """A request started on the worker (reported by whoever sees requests, e.g. a proxy):
        IDLE -> BUSY, ``last_activity`` now. The idle timeout never stops a busy worker."""
        return self._use(worker_id, busy=True)

    def mark_idle(self, worker_id: str) -> WorkerInfo:
        """A request ended on the worker: BUSY -> IDLE, ``last_activity`` now."""
        return self._use(worker_id, busy=False)

    # ------------------------------------------------------------------ stopping

    async def stop(self, worker_id: str, reason: str = "requested") -> StopOutcome:
        """Stop a worker for good (it is never restarted afterwards): HTTP shutdown if the
        engine has one, its graceful signal to the process group, SIGKILL at ``stop_timeout``,
        always reaped. Ends STOPPED (FAILED if it could not be reaped); the record stays until
        ``forget``. Shielded from cancellation, bounded by ``stop_timeout`` plus a few seconds.
        """
        return await self._run(worker_id).stop(reason)

    async def stop_all(self, deadline: float, reason: str = "hive shutdown") -> StopReport:
        """Stop every live worker in parallel, all within ``deadline`` seconds from now
        (SIGKILL comes at ``stop_timeout`` or shortly before the deadline, whichever is first).
        """
        if not deadline > 0:
            raise ValueError(f"stop_all deadline must be > 0 s, got {deadline}")
        begin = anyio.current_time()
        kill_after = min(self._shared.settings.stop_timeout, deadline - min(1.0, deadline / 4))
        registry = self._shared.registry
        live = [
            run
            for run in self._shared.runs.values()
            if (info := registry.get(run.worker_id)) is not None and not info.state.is_terminal
        ]
        log.info("stopping %d workers within %g s", len(live), deadline)
        outcomes: dict[str, StopOutcome] = {}

        async def stop_one(run: WorkerRun) -> None:
            give_up_after = deadline - (anyio.current_time() - begin)
            with contextlib.suppress(UnknownWorker):
                outcomes[run.worker_id] = await run.stop(
                    reason, kill_after=kill_after, give_up_after=give_up_after
                )

        async with anyio.create_task_group() as tg:
            for run in live:
                tg.start_soon(stop_one, run)
        report = StopReport.of(outcomes, anyio.current_time() - begin)
        log.log(
            logging.WARNING if report.timed_out else logging.INFO,
            "stopped %d workers in %.2f s: %d graceful, %d forced, %d timed out, %d had no process",
            report.total,
            report.duration,
            report.graceful,
            report.forced,
            report.timed_out,
            report.already_stopped,
        )
        return report

    def forget(self, worker_id: str) -> WorkerInfo:
        """Remove a STOPPED or FAILED worker from the registry; returns its last record."""
        run = self._run(worker_id)
        info = run.record()
        if not info.state.is_terminal:
            raise WorkerConflict(
                worker_id, f"worker {worker_id} is {info.state.value}; stop it before forgetting"
            )
        del self._shared.runs[worker_id]
        if run.proc is None or not run.proc.running:
            self._shared.ports.release(run.port, worker_id)
        return self._shared.registry.remove(worker_id)

    def log_path(self, worker_id: str) -> Path:
        """Where the worker's output goes: ``<log_dir>/<worker_id>.log``."""
        return self._shared.settings.log_dir / f"{worker_id}.log"

    # ------------------------------------------------------------------ internals

    async def _kill_everything(self) -> None:
        """SIGKILL and reap every process that is left; used when the supervisor closes."""
        self.refuse_new()
        runs = list(self._shared.runs.values())
        for run in runs:
            if run.launching is not None:
                await run.launching.wait()
        left = [r.proc for r in runs if r.proc is not None and r.proc.running]
        for proc in left:
            proc.signal_group(signal.SIGKILL)
        for proc in left:
            await proc.exited.wait()
        if left:
            log.warning(
                "supervisor closing: killed %d worker processes that were still running (pids %s)",
                len(left),
                ", ".join(str(p.pid) for p in left),
            )

    def _record_hive_stop(self) -> None:
        """After the task group is gone: record every worker that was left as STOPPED."""
        for run in list(self._shared.runs.values()):
            info = self._shared.registry.get(run.worker_id)
            if info is None or info.state.is_terminal:
                continue
            proc = run.proc
            if isinstance(proc, WorkerProcess) and proc.process.returncode is not None:
                proc.returncode = proc.process.returncode
                proc.exited.set()
            run.apply(lc.HiveGone(None if proc is None else proc.returncode))

    async def _take_back(self, state: StateFile) -> StateRecorder:
        """Adopt the workers an earlier hive left running, then keep ``state`` written."""
        shared = self._shared
        await adopt_survivors(
            self, state, task_group=shared.task_group, stop_grace=shared.settings.stop_timeout
        )
        recorder = StateRecorder(shared.registry, state, self._launch_details)
        await shared.task_group.start(recorder.run, name="adoption state file")
        return recorder

    def _launch_details(self, worker_id: str) -> LaunchDetails | None:
        """What the state file keeps of the worker's current process, beyond its record."""
        run = self._shared.runs.get(worker_id)
        if run is None or not isinstance(run.proc, WorkerProcess) or not run.proc.running:
            return None
        urls = run.proc.secret_urls
        return LaunchDetails(
            env=run.spec.env,
            callback_url=urls[0] if urls else None,
            log_path=run.log_path,
            launch=run.proc.launch,
        )

    def _restore_callback(self, worker_id: str, url: str | None) -> bool:
        """Accept an adopted worker's callback URL again; True when its secret is live."""
        callbacks = self._shared.callbacks
        if url is None or callbacks is None:
            return False
        if isinstance(callbacks, CallbackRestorer) and callbacks.restore(worker_id, url):
            return True
        log.warning(
            "worker %s (adopted) reports to %s, a callback URL this hive cannot take back "
            "(does it listen on another address now?); its heartbeats are not counted, its "
            "probes still watch it",
            worker_id,
            mask_url(url),
        )
        return False

    def _run(self, worker_id: str) -> WorkerRun:
        run = self._shared.runs.get(worker_id)
        if run is None:
            raise UnknownWorker(worker_id)
        return run

    def _use(self, worker_id: str, *, busy: bool) -> WorkerInfo:
        run = self._run(worker_id)
        info = run.record()
        if any(isinstance(a, lc.Refuse) for a in run.apply(lc.Used(busy))):
            raise WorkerConflict(
                worker_id, f"worker {worker_id} is {info.state.value}, not ready for requests"
            )
        return run.record()

    def _new_run(
        self, spec: WorkerSpec, engine: EngineSpec, worker_id: str, port: int
    ) -> WorkerRun:
        shared, s = self._shared, self._shared.settings
        return WorkerRun(
            shared=shared,
            spec=spec,
            engine=engine,
            port=port,
            core=lc.Core(
                identity=lc.Identity(
                    worker_id=worker_id,
                    model_ref=spec.model_ref,
                    backend=spec.backend,
                    device=spec.device,
                    engine=engine.name,
                )
            ),
            tracker=RestartTracker(
                clock=shared.clock,
                random=shared.random,
                policy=s.restart_policy,
                backoff=s.backoff,
                breaker=s.breaker,
                stable_after=s.stable_after,
            ),
        )


def _warn_idle_timeout(settings: SupervisorSettings, engines: Iterable[EngineSpec]) -> None:
    if settings.idle_timeout is None:
        return
    blind = sorted(e.name for e in engines if e.activity == "none")
    if blind:
        log.warning(
            "idle_timeout %g s does not apply to workers of engine(s) %s: they report no "
            "activity, so a busy worker could not be told from an idle one. Set the engine's "
            "'activity' (e.g. \"slots\" for llama-server) to have it apply",
            settings.idle_timeout,
            ", ".join(blind),
        )


def _engine_map(
    engines: Iterable[EngineSpec], callbacks: WorkerCallbacks | None
) -> dict[str, EngineSpec]:
    found: dict[str, EngineSpec] = {}
    for engine in engines:
        if engine.name in found:
            raise InvalidEngine(f"engine {engine.name!r} is configured twice")
        if engine.uses_callback_url and callbacks is None:
            raise InvalidEngine(
                f"engine {engine.name!r} hands its workers a {{callback_url}}, but the "
                "supervisor was opened without callbacks"
            )
        found[engine.name] = engine
    return found
