"""One supervised worker: its launches, the watch over each, restarts, and its stop.

``WorkerRun`` holds everything the supervisor knows about one worker beyond the registry
record; ``Shared`` is what all of them share (registry, ports, settings, the task group).
Every registry write here is conditional on the revision just read, with no await between
the read and the write, so a decision taken on a stale read can never undo a newer state.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs

from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._http import WorkerHttp
from rbee_hive_monitor._ports import PortAllocator, port_is_reusable
from rbee_hive_monitor._process import (
    ProgramNotStarted,
    WorkerProcess,
    describe_exit,
    launch_process,
    worker_env,
)
from rbee_hive_monitor._settings import SupervisorSettings, WorkerSpec
from rbee_hive_monitor._stop import StopOutcome, escalate
from rbee_hive_monitor._watch import LaunchWatch
from rbee_hive_monitor.exceptions import LaunchFailed, NoFreePort, UnknownWorker
from rbee_hive_registry import WorkerInfo, WorkerRegistry, WorkerState
from rbee_hive_restart import GiveUp, RestartTracker, StayDown

log = logging.getLogger("rbee_hive.monitor")

_S = WorkerState
REAP_GRACE = 5.0
"""How long a stop waits for the reap after SIGKILL."""
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


class WorkerCallbacks(Protocol):
    """What the HTTP layer gives the supervisor for workers that call back (rbee engine)."""

    def issue(self, worker_id: str) -> str:
        """A fresh callback URL carrying a per-worker secret; called at every launch, and the
        URL issued last is the only one that should be accepted."""
        ...

    def revoke(self, worker_id: str) -> None:
        """Forget the worker's secret: it is stopped, failed or forgotten."""
        ...


def now() -> datetime:
    """The wall-clock time the registry records."""
    return datetime.now(UTC)


def http_url(host: str, port: int) -> str:
    """``http://host:port``, with brackets for an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@attrs.define(eq=False)
class Shared:
    """What every ``WorkerRun`` of one supervisor shares."""

    registry: WorkerRegistry
    settings: SupervisorSettings
    callbacks: WorkerCallbacks | None
    http: WorkerHttp
    task_group: anyio.abc.TaskGroup
    clock: Callable[[], float]
    random: Callable[[], float]
    ports: PortAllocator
    runs: dict[str, WorkerRun] = attrs.field(factory=dict)
    closed: bool = False
    """Set by ``refuse_new``: no new workers, no restarts."""

    def __repr__(self) -> str:
        return f"<Shared runs={len(self.runs)} closed={self.closed} {self.ports!r}>"

    def worker_url(self, port: int) -> str:
        """The URL the hive publishes for a worker on ``port``."""
        return http_url(self.settings.worker_host, port)

    def probe_base(self, port: int) -> str:
        """Where the hive itself reaches a worker: its bind host, loopback for a wildcard."""
        host = self.settings.bind_host
        return http_url("127.0.0.1" if host in _WILDCARDS else host, port)

    def ports_in_registry(self) -> set[int]:
        """Ports of every worker that is not terminal, whoever registered it."""
        return {w.port for w in self.registry if not w.state.is_terminal}

    def is_closed(self) -> bool:
        """``closed``, read through a call so type checkers do not narrow it across awaits."""
        return self.closed


@attrs.define(eq=False)
class WorkerRun:
    """The supervisor's private bookkeeping for one worker, and what it does to it."""

    shared: Shared
    worker_id: str
    spec: WorkerSpec
    engine: EngineSpec
    tracker: RestartTracker
    port: int
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    """Scope of the supervising task; a stop cancels it (probes, backoff, everything)."""
    model_path: Path | None = None
    proc: WorkerProcess | None = None
    launches: int = 0
    launching: anyio.Event | None = None
    """Set while a process is being started; a stop waits for it, then stops that process."""
    in_grace: bool = False
    """``Supervisor.start`` owns an exit until ``early_exit_grace`` has passed."""
    discarded: bool = False
    backoff: anyio.CancelScope | None = None
    stop_requested: bool = False
    stop_done: anyio.Event | None = None
    stop_outcome: StopOutcome = StopOutcome.ALREADY_STOPPED
    callback_issued: bool = False
    last_use: float | None = None
    """anyio time of the last real use (ready, busy, idle); never touched by probes."""
    last_heartbeat: float | None = None

    def __repr__(self) -> str:
        return (
            f"<WorkerRun {self.worker_id} engine={self.engine.name} port={self.port} "
            f"launches={self.launches} proc={self.proc!r} stop_requested={self.stop_requested}>"
        )

    @property
    def log_path(self) -> Path:
        """``<log_dir>/<worker_id>.log``."""
        return self.shared.settings.log_dir / f"{self.worker_id}.log"

    def record(self) -> WorkerInfo:
        """The worker's current registry record; ``UnknownWorker`` if it was removed."""
        info = self.shared.registry.get(self.worker_id)
        if info is None:
            raise UnknownWorker(self.worker_id)
        return info

    # ------------------------------------------------------------------ launching

    async def launch(self) -> WorkerProcess:
        """Start a new process on ``self.port``; raises ``LaunchFailed``."""
        shared, engine, worker_id = self.shared, self.engine, self.worker_id
        launch = self.launches + 1
        values = {
            "worker_id": worker_id,
            "model_path": str(self.model_path),
            "model_ref": self.spec.model_ref,
            "backend": self.spec.backend,
            "device": str(self.spec.visible_device),
            "port": str(self.port),
            "host": shared.settings.bind_host,
            "python": sys.executable,
            "callback_url": "",
        }
        if engine.uses_callback_url:
            assert shared.callbacks is not None  # Supervisor.open checks it
            values["callback_url"] = shared.callbacks.issue(worker_id)
            self.callback_issued = True
        secrets = (values["callback_url"],) if values["callback_url"] else ()
        argv = engine.render_argv(values)
        self.launching = launching = anyio.Event()
        try:
            # Shielded: a process that was started must be recorded, or nobody could stop it.
            with anyio.CancelScope(shield=True):
                process, offset = await launch_process(
                    argv,
                    env=worker_env(engine.env, self.spec.env),
                    log_path=self.log_path,
                    header=f"launch {launch} of {worker_id} (engine {engine.name}, "
                    f"port {self.port})",
                    secret_urls=secrets,
                )
            self.launches = launch
            self.proc = proc = WorkerProcess(
                process=process,
                launch=launch,
                port=self.port,
                log_path=self.log_path,
                log_offset=offset,
                secret_urls=secrets,
                started=anyio.current_time(),
            )
            self.tracker.started()
            shared.task_group.start_soon(proc.watch, name=f"exit of {worker_id} pid {proc.pid}")
        except ProgramNotStarted as err:
            raise _launch_failed(worker_id, engine, argv[0], err.error) from err.error
        except OSError as err:
            raise LaunchFailed(
                f"cannot start worker {worker_id}: its log {self.log_path} cannot be written "
                f"({err}); check the log_dir setting and its permissions",
                code="WORKER_LAUNCH_FAILED",
                worker_id=worker_id,
            ) from err
        finally:
            self.launching = None
            launching.set()
        info = shared.registry.get(worker_id)
        if info is not None and info.state in (_S.LOADING, _S.STOPPING):
            shared.registry.update(
                worker_id, expected_revision=info.revision, pid=proc.pid, started_at=now()
            )
        log.info(
            "worker %s launched: pid %d, port %d, engine %s, launch %d; log %s",
            worker_id,
            proc.pid,
            proc.port,
            engine.name,
            launch,
            self.log_path,
        )
        return proc

    def set_ready(self, proc: WorkerProcess, info: WorkerInfo) -> WorkerInfo:
        """LOADING -> IDLE for ``proc``, conditional on ``info`` being the current record."""
        updated = self.shared.registry.transition(
            self.worker_id,
            _S.IDLE,
            expected_revision=info.revision,
            failed_health_checks=0,
            last_activity=now(),
            reason=None,
        )
        proc.ready.set()
        proc.settled.set()
        self.last_use = anyio.current_time()
        log.info(
            "worker %s (pid %d) is ready at %s, %.2f s after its launch",
            self.worker_id,
            proc.pid,
            updated.url,
            anyio.current_time() - proc.started,
        )
        return updated

    def can_become_ready(self, proc: WorkerProcess | None, info: WorkerInfo) -> bool:
        """Whether ``proc`` is this worker's current, running, loading launch."""
        return (
            proc is not None
            and proc is self.proc
            and proc.running
            and not proc.ready.is_set()
            and info.state is _S.LOADING
            and not self.stop_requested
        )

    # ------------------------------------------------------------------ supervising

    async def supervise(self) -> None:
        """Watch the current launch; after an exit nobody asked for, restart or give up."""
        with self.scope:
            while True:
                proc = self.proc
                assert proc is not None
                await self._watch(proc)
                if self.stop_requested or self.in_grace or self.discarded:
                    return  # stop() or Supervisor.start owns this exit
                if not await self._after_exit(proc):
                    return

    async def _watch(self, proc: WorkerProcess) -> None:
        watch = LaunchWatch(
            worker_id=self.worker_id,
            proc=proc,
            engine=self.engine,
            settings=self.shared.settings,
            http=self.shared.http,
            registry=self.shared.registry,
            base_url=self.shared.probe_base(proc.port),
            become_ready=lambda: self._ready_by_probe(proc),
            last_use=lambda: self.last_use,
            last_heartbeat=lambda: self.last_heartbeat,
            request_stop=self._request_stop,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            await proc.exited.wait()
            tg.cancel_scope.cancel()

    def _ready_by_probe(self, proc: WorkerProcess) -> None:
        info = self.shared.registry.get(self.worker_id)
        if info is not None and self.can_become_ready(proc, info):
            self.set_ready(proc, info)

    def _request_stop(self, reason: str) -> None:
        self.shared.task_group.start_soon(self._stop_quietly, reason)

    async def _stop_quietly(self, reason: str) -> None:
        with contextlib.suppress(UnknownWorker):
            await self.stop(reason)

    async def _after_exit(self, proc: WorkerProcess) -> bool:
        """Handle an exit the hive did not ask for; True when a new process was launched."""
        shared, worker_id = self.shared, self.worker_id
        code = proc.returncode
        what = proc.kill_reason or describe_exit(code)
        where = f"worker {worker_id} (pid {proc.pid})"
        if proc.failed_loading:
            self.end(_S.FAILED, f"{what}; not restarted", exit_code=code)
            return False
        if shared.closed:
            log.info("%s %s while the hive is shutting down; not restarted", where, what)
            self.end(_S.STOPPED, f"{what} during hive shutdown", exit_code=code)
            return False
        decision = self.tracker.exited(code)
        if isinstance(decision, GiveUp):
            closes_in = max(0.0, decision.closes_at - shared.clock())
            reason = (
                f"{what}; gave up: {decision.reason}; the breaker would close in {closes_in:.0f} s"
            )
            log.error(
                "%s %s. It stays FAILED until it is spawned again; its log: %s",
                where,
                reason,
                proc.log_path,
            )
            self.end(_S.FAILED, reason, exit_code=code)
            return False
        if isinstance(decision, StayDown):
            reason = f"{what}; not restarted: {decision.reason}"
            log.warning("%s %s; its log: %s", where, reason, proc.log_path)
            self.end(_S.STOPPED if code == 0 else _S.FAILED, reason, exit_code=code)
            return False
        info = self.record()
        reason = f"{what}; restart {decision.attempt} in {decision.delay:.3g} s"
        changes: dict[str, Any] = {
            "pid": None,
            "started_at": None,
            "exit_code": code,
            "reason": reason,
            "restart_count": info.restart_count + 1,
            "last_restart": now(),
            "failed_health_checks": 0,
            "last_heartbeat": None,
        }
        if info.state is _S.LOADING:
            shared.registry.update(worker_id, expected_revision=info.revision, **changes)
        else:
            shared.registry.transition(
                worker_id, _S.LOADING, expected_revision=info.revision, **changes
            )
        self.last_use = self.last_heartbeat = None
        log.warning("%s %s; its log: %s", where, reason, proc.log_path)
        with anyio.CancelScope() as backoff:
            self.backoff = backoff  # refuse_new() cancels it; stop() cancels self.scope
            await anyio.sleep(decision.delay)
        self.backoff = None
        # Checked with no await before the next launch begins: a stop that came in while
        # this task was about to resume must win, or it would miss the new process.
        if self.stop_requested:
            return False
        if shared.is_closed():
            self.end(_S.STOPPED, f"{what}; restart cancelled: the hive is shutting down")
            return False
        try:
            self._keep_or_move_port()
            await self.launch()
        except (NoFreePort, LaunchFailed) as err:
            log.error("worker %s cannot be restarted: %s", worker_id, err)
            self.end(_S.FAILED, f"{what}; restart failed: {err}")
            return False
        return True

    def _keep_or_move_port(self) -> None:
        if port_is_reusable(self.port):
            return
        shared, old = self.shared, self.port
        new = shared.ports.reserve(self.worker_id, also_taken=shared.ports_in_registry())
        shared.ports.release(old, self.worker_id)
        self.port = new
        info = self.record()
        url = shared.worker_url(new)
        shared.registry.update(self.worker_id, expected_revision=info.revision, port=new, url=url)
        log.warning(
            "worker %s: port %d is taken by another process; it restarts on port %d (%s)",
            self.worker_id,
            old,
            new,
            url,
        )

    # ------------------------------------------------------------------ stopping

    async def stop(
        self,
        reason: str,
        *,
        kill_after: float | None = None,
        give_up_after: float | None = None,
    ) -> StopOutcome:
        """Stop for good; see ``Supervisor.stop``. SIGKILL at ``kill_after`` (default
        ``stop_timeout``); shielded, and bounded by ``give_up_after`` (default a few seconds
        more)."""
        if kill_after is None:
            kill_after = self.shared.settings.stop_timeout
        if give_up_after is None:
            give_up_after = kill_after + REAP_GRACE
        if self.stop_done is not None and self.stop_done.is_set():
            return StopOutcome.ALREADY_STOPPED
        if self.stop_done is not None:  # another stop is under way: share its outcome
            with anyio.move_on_after(give_up_after, shield=True):
                await self.stop_done.wait()
                return self.stop_outcome
            return StopOutcome.TIMED_OUT
        info = self.record()
        if info.state.is_terminal:
            return StopOutcome.ALREADY_STOPPED
        self.stop_requested = True
        self.stop_done = done = anyio.Event()
        outcome = StopOutcome.ALREADY_STOPPED
        try:
            with anyio.CancelScope(shield=True):
                self.shared.registry.transition(
                    self.worker_id,
                    _S.STOPPING,
                    expected_revision=info.revision,
                    reason=f"stopping: {reason}",
                )
                self.scope.cancel()
                if self.launching is not None:
                    await self.launching.wait()
                outcome = await self._stop_process(reason, kill_after, give_up_after)
        finally:
            self.stop_outcome = outcome
            done.set()
        return outcome

    async def _stop_process(
        self, reason: str, kill_after: float, give_up_after: float
    ) -> StopOutcome:
        proc = self.proc
        if proc is None or not proc.running:
            log.info("worker %s stopped (%s); no process was running", self.worker_id, reason)
            changes = {} if proc is None else {"exit_code": proc.returncode}
            self.end(_S.STOPPED, f"stopped: {reason}", **changes)
            return StopOutcome.ALREADY_STOPPED
        log.info("stopping worker %s (pid %d): %s", self.worker_id, proc.pid, reason)
        outcome = await escalate(
            self.worker_id,
            proc,
            engine=self.engine,
            http=self.shared.http,
            base_url=self.shared.probe_base(proc.port),
            http_timeout=self.shared.settings.http_shutdown_timeout,
            kill_after=kill_after,
            give_up_after=give_up_after,
        )
        if outcome is StopOutcome.TIMED_OUT:
            self.end(_S.FAILED, f"stop ({reason}) could not reap pid {proc.pid}")
        else:
            self.end(_S.STOPPED, f"stopped: {reason}", exit_code=proc.returncode)
        return outcome

    def end(self, target: WorkerState, reason: str, **changes: Any) -> WorkerInfo:
        """Move to STOPPED or FAILED; release the port once no process of this worker can be
        alive, and revoke the callback secret."""
        registry, worker_id = self.shared.registry, self.worker_id
        info = self.record()
        if not info.state.is_terminal:
            if target is _S.STOPPED and info.state is not _S.STOPPING:
                info = registry.transition(
                    worker_id, _S.STOPPING, expected_revision=info.revision, reason=reason
                )
            info = registry.transition(
                worker_id,
                target,
                expected_revision=info.revision,
                reason=reason,
                pid=None,
                started_at=None,
                **changes,
            )
        if self.proc is None or not self.proc.running:
            self.shared.ports.release(self.port, worker_id)
        self.revoke()
        return info

    def discard(self, keep_as_failed: str | None = None) -> None:
        """Undo a launch that failed: port back, secret revoked, and the record removed (or,
        with ``keep_as_failed``, left as FAILED with that reason)."""
        self.discarded = True
        self.scope.cancel()
        info = self.shared.registry.get(self.worker_id)
        if info is not None and keep_as_failed is not None and not info.state.is_terminal:
            self.shared.registry.transition(
                self.worker_id, WorkerState.FAILED, pid=None, reason=keep_as_failed
            )
        elif info is not None:
            self.shared.registry.remove(self.worker_id)
        self.shared.ports.release(self.port, self.worker_id)
        self.revoke()
        self.shared.runs.pop(self.worker_id, None)

    def revoke(self) -> None:
        """Revoke the callback secret if one is out."""
        if self.callback_issued and self.shared.callbacks is not None:
            self.callback_issued = False
            self.shared.callbacks.revoke(self.worker_id)


def _launch_failed(
    worker_id: str, engine: EngineSpec, program: str, error: OSError
) -> LaunchFailed:
    if isinstance(error, FileNotFoundError):
        code, hint = "WORKER_BINARY_NOT_FOUND", "not found; install it or fix the engine's path"
    elif isinstance(error, PermissionError):
        code, hint = "WORKER_BINARY_NOT_EXECUTABLE", "not executable; check its mode (chmod +x)"
    else:
        code, hint = "WORKER_LAUNCH_FAILED", f"could not be started ({error})"
    message = f"cannot start worker {worker_id}: program {program!r} (engine {engine.name}) {hint}"
    log.error("%s", message)
    return LaunchFailed(message, code=code, worker_id=worker_id)
