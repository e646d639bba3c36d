"""One supervised worker: the driver that carries out its lifecycle core's decisions.

``WorkerRun`` holds the worker's ``Core`` (``_lifecycle``) and the handles the core cannot
hold: its process, the cancel scopes of its probes and backoff, the events its callers wait on.
Every input goes through ``WorkerRun.apply``, which runs the pure ``step`` and then carries out
the actions; ``apply`` never awaits, so each input is handled atomically. Async work (a launch,
a backoff, a watch, a stop's escalation) runs in tasks that report back through ``apply``.
Every registry write here is conditional on the revision just read, with no await between
the read and the write, so a write based on a stale read can never undo a newer state.

``Shared`` is what all runs of one supervisor share (registry, ports, settings, the task
group, the lifecycle event feed).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs

from rbee_hive_monitor import _lifecycle as lc
from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._events import (
    HealthCheckFailed,
    LifecycleEvent,
    LifecycleTotals,
    counted_as,
)
from rbee_hive_monitor._handle import ProcessHandle
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
from rbee_hive_registry import Feed, Subscription, WorkerInfo, WorkerRegistry, WorkerState
from rbee_hive_restart import GiveUp, RestartTracker

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
    events: Feed[LifecycleEvent] = attrs.field(factory=Feed)
    seq: int = 0
    counts: Counter[str] = attrs.field(factory=Counter)

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

    def publish(self, event: LifecycleEvent) -> None:
        """Number ``event``, add it to the totals and hand it to every subscriber."""
        self.seq += 1
        event = attrs.evolve(event, seq=self.seq)
        self.counts.update(counted_as(event))
        self.events.publish(event)

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        """Follow every lifecycle event from now on."""
        return self.events.subscribe(capacity)

    def totals(self) -> LifecycleTotals:
        """The running totals, up to the last event published."""
        return LifecycleTotals(seq=self.seq, counts=self.counts)


@attrs.define(eq=False)
class WorkerRun:
    """The driver of one worker: its lifecycle core, and what carries the core's actions out."""

    shared: Shared
    spec: WorkerSpec
    engine: EngineSpec
    tracker: RestartTracker
    port: int
    core: lc.Core
    model_path: Path | None = None
    proc: ProcessHandle | None = None
    launching: anyio.Event | None = None
    """Set while a process is being started; a stop waits for it, then stops that process."""
    settled: anyio.Event = attrs.field(factory=anyio.Event)
    """Of the current launch: set when it became ready or its exit was handled."""
    probes: anyio.CancelScope | None = None
    backoff: anyio.CancelScope | None = None
    stop_done: anyio.Event | None = None
    stop_outcome: StopOutcome = StopOutcome.ALREADY_STOPPED
    start_failure: LaunchFailed | None = None
    """The error ``Supervisor.start`` raises: the first launch exited within the grace."""
    callback_issued: bool = False
    last_heartbeat: float | None = None

    def __repr__(self) -> str:
        return (
            f"<WorkerRun {self.worker_id} engine={self.engine.name} port={self.port} "
            f"phase={self.core.phase.value} launch={self.core.launch} proc={self.proc!r}>"
        )

    @property
    def worker_id(self) -> str:
        """The worker's id."""
        return self.core.identity.worker_id

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

    # ------------------------------------------------------------------ the core

    def apply(self, event: lc.Input) -> list[lc.Action]:
        """Run ``event`` through the core and carry out the actions; never awaits. Returns the
        actions, so a caller can see what it has to do itself (``Launch`` of a first launch,
        ``Escalate``, ``JoinStop``, ``Answer``, ``Refuse``)."""
        self.core, actions = lc.step(self.core, event, anyio.current_time())
        for action in actions:
            self._carry_out(action)
        return actions

    def _carry_out(self, action: lc.Action) -> None:
        if isinstance(action, lc.Emit):
            self.shared.publish(action.event)
        elif isinstance(action, lc.Launch):
            if action.restart:
                self.shared.task_group.start_soon(
                    self._relaunch, action.launch, name=f"restart of {self.worker_id}"
                )
        elif isinstance(action, lc.Watch):
            self._start_watch(action.launch)
        elif isinstance(action, lc.SetReady):
            self._set_ready()
        elif isinstance(action, lc.RecordUse):
            self._record_use(action.busy)
        elif isinstance(action, lc.SignalKill):
            if self.proc is not None:
                self.proc.signal_group(signal.SIGKILL)
        elif isinstance(action, lc.Decide):
            self._decide(action.exit_code)
        elif isinstance(action, lc.ScheduleRestart):
            self._schedule_restart(action)
        elif isinstance(action, lc.CancelBackoff):
            if self.backoff is not None:
                self.backoff.cancel()
        elif isinstance(action, lc.CancelWatch):
            if self.probes is not None:
                self.probes.cancel()
        elif isinstance(action, lc.MarkStopping):
            self._mark_stopping(action.reason)
        elif isinstance(action, lc.End):
            self.end(action.state, action.reason, exit_code=action.exit_code)
        elif isinstance(action, lc.Discard):
            self.discard(action.keep_as_failed)
        elif isinstance(action, lc.FailStart):
            self._fail_start(action.exit_code, forget=action.forget)
        elif isinstance(action, lc.RequestStop):
            self.shared.task_group.start_soon(self._stop_quietly, action.reason)
        # Escalate, JoinStop, Answer, Refuse, and a first Launch: for the caller.

    # ------------------------------------------------------------------ launching

    async def launch(self, launch: int) -> ProcessHandle:
        """Start launch ``launch`` on ``self.port``; raises ``LaunchFailed`` (after the core
        has been told)."""
        try:
            proc = await self._start_process(launch)
        except LaunchFailed as err:
            self.apply(lc.LaunchError(launch, err.code, str(err)))
            raise
        self.apply(lc.Launched(launch))
        return proc

    async def _start_process(self, launch: int) -> ProcessHandle:
        shared, engine, worker_id = self.shared, self.engine, self.worker_id
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
        self.settled = anyio.Event()
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
                    # Spawned from the event loop's thread, which lives as long as the hive:
                    # PDEATHSIG fires when the spawning thread ends, not only the process.
                    parent_death_signal=(
                        signal.SIGTERM if shared.settings.kill_workers_on_exit else None
                    ),
                )
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

    async def _relaunch(self, launch: int) -> None:
        try:
            self._keep_or_move_port()
        except NoFreePort as err:
            log.error("worker %s cannot be restarted: %s", self.worker_id, err)
            self.apply(lc.LaunchError(launch, err.code, str(err)))
            return
        try:
            await self.launch(launch)
        except LaunchFailed as err:
            log.error("worker %s cannot be restarted: %s", self.worker_id, err)

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

    def grace_over(self) -> None:
        """``Supervisor.start`` is done waiting: an exit it saw is an early one; any later exit
        is a crash."""
        proc = self.proc
        if proc is not None and not proc.running:
            self.apply(lc.Exited(self.core.launch, proc.returncode))
        self.apply(lc.GraceOver())

    def _fail_start(self, exit_code: int | None, *, forget: bool) -> None:
        proc = self.proc
        grace = self.shared.settings.early_exit_grace
        took = 0.0 if proc is None else anyio.current_time() - proc.started
        failure = LaunchFailed(
            f"worker {self.worker_id} {describe_exit(exit_code)} {took:.2f} s after its launch, "
            f"within early_exit_grace ({grace:g} s); nothing was kept running. Its log: "
            f"{self.log_path}",
            code="WORKER_EXITED_EARLY",
            worker_id=self.worker_id,
            exit_code=exit_code,
            log_tail=[] if proc is None else proc.log_tail(),
        )
        self.start_failure = failure
        self.settled.set()
        self.discard(None if forget else str(failure))

    # ------------------------------------------------------------------ watching

    def start_watch(self) -> None:
        """Watch the current launch (probes, idleness, its exit)."""
        self._start_watch(self.core.launch)

    def _start_watch(self, launch: int) -> None:
        proc = self.proc
        assert proc is not None  # Launched comes after the process was recorded
        self.probes = probes = anyio.CancelScope()
        self.shared.task_group.start_soon(
            self._watch, proc, launch, probes, self.settled, name=f"watch {self.worker_id}"
        )

    async def _watch(
        self, proc: ProcessHandle, launch: int, probes: anyio.CancelScope, settled: anyio.Event
    ) -> None:
        watch = LaunchWatch(
            worker_id=self.worker_id,
            launch=launch,
            proc=proc,
            engine=self.engine,
            settings=self.shared.settings,
            http=self.shared.http,
            registry=self.shared.registry,
            base_url=self.shared.probe_base(proc.port),
            settled=settled,
            owner=self,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._probe, watch, probes)
            await proc.exited.wait()
            tg.cancel_scope.cancel()
        self.apply(lc.Exited(launch, proc.returncode))
        settled.set()

    @staticmethod
    async def _probe(watch: LaunchWatch, probes: anyio.CancelScope) -> None:
        with probes:
            await watch.run()

    # WatchOwner

    def become_ready(self, launch: int) -> None:
        """The ready probe answered: the core decides whether that makes it ready."""
        proc = self.proc
        alive = proc is not None and proc.running
        url = self.shared.worker_url(self.port)
        self.apply(lc.BecameReady(launch, alive, url))

    def is_serving(self, launch: int) -> bool:
        """Whether ``launch`` is the current launch and ready."""
        core = self.core
        return core.phase is lc.Phase.RUNNING and core.launch == launch and core.ready

    def is_busy(self) -> bool:
        """Whether the worker is in use."""
        return self.core.busy

    def report_activity(self, busy: bool) -> None:
        """The activity source's answer."""
        self.apply(lc.Activity(busy))

    def idle_check(self) -> bool:
        """Ask the core whether the idle timeout is reached; it then asks for a stop."""
        limit = self.shared.settings.idle_timeout
        if limit is None:
            return False
        return any(isinstance(a, lc.RequestStop) for a in self.apply(lc.IdleCheck(limit)))

    def kill(self, launch: int, reason: str, *, loading: bool) -> None:
        """Kill the launch; its exit is then handled by the core."""
        self.apply(lc.Kill(launch, reason, loading))

    def last_heartbeat_at(self) -> float | None:
        """anyio time of the last heartbeat."""
        return self.last_heartbeat

    def health_failed(self, failures: int, threshold: int, problem: str) -> None:
        """Publish the failed probe."""
        self.shared.publish(
            HealthCheckFailed(
                **lc.stamp(self.core, anyio.current_time()),
                failures=failures,
                threshold=threshold,
                problem=problem,
            )
        )

    # ------------------------------------------------------------------ registry effects

    def _set_ready(self) -> None:
        info = self.record()
        updated = self.shared.registry.transition(
            self.worker_id,
            _S.IDLE,
            expected_revision=info.revision,
            failed_health_checks=0,
            last_activity=now(),
            reason=None,
        )
        self.settled.set()
        proc = self.proc
        log.info(
            "worker %s (pid %s) is ready at %s, %.2f s after its launch",
            self.worker_id,
            "?" if proc is None else proc.pid,
            updated.url,
            0.0 if proc is None else anyio.current_time() - proc.started,
        )

    def _record_use(self, busy: bool) -> None:
        registry = self.shared.registry
        info = self.record()
        target = _S.BUSY if busy else _S.IDLE
        if info.state is target:
            registry.update(self.worker_id, expected_revision=info.revision, last_activity=now())
        elif info.state.is_ready:
            registry.transition(
                self.worker_id, target, expected_revision=info.revision, last_activity=now()
            )

    def _decide(self, exit_code: int | None) -> None:
        decision = self.tracker.exited(exit_code)
        closes_in = 0.0
        if isinstance(decision, GiveUp):
            closes_in = max(0.0, decision.closes_at - self.shared.clock())
        self.apply(lc.Decided(decision, closes_in))

    def _schedule_restart(self, action: lc.ScheduleRestart) -> None:
        registry, worker_id = self.shared.registry, self.worker_id
        info = self.record()
        changes: dict[str, Any] = {
            "pid": None,
            "started_at": None,
            "exit_code": action.exit_code,
            "reason": action.reason,
            "restart_count": info.restart_count + 1,
            "last_restart": now(),
            "failed_health_checks": 0,
            "last_heartbeat": None,
        }
        if info.state is _S.LOADING:
            registry.update(worker_id, expected_revision=info.revision, **changes)
        else:
            registry.transition(worker_id, _S.LOADING, expected_revision=info.revision, **changes)
        self.last_heartbeat = None
        pid = "?" if self.proc is None else self.proc.pid
        log.warning(
            "worker %s (pid %s) %s; its log: %s", worker_id, pid, action.reason, self.log_path
        )
        # Created here, before the task runs: a stop or refuse_new right after this must be
        # able to cancel the wait even if the task has not started yet.
        self.backoff = scope = anyio.CancelScope()
        self.shared.task_group.start_soon(
            self._backoff, scope, action.delay, name=f"backoff of {worker_id}"
        )

    async def _backoff(self, scope: anyio.CancelScope, delay: float) -> None:
        with scope:
            await anyio.sleep(delay)
        if self.backoff is scope:
            self.backoff = None
        self.apply(lc.BackoffOver())

    def _mark_stopping(self, reason: str) -> None:
        info = self.record()
        if info.state.is_terminal or info.state is _S.STOPPING:
            return
        self.shared.registry.transition(
            self.worker_id, _S.STOPPING, expected_revision=info.revision, reason=reason
        )

    def end(self, target: WorkerState, reason: str, *, exit_code: int | None) -> WorkerInfo:
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
                exit_code=exit_code,
            )
        if target is _S.FAILED:
            log.error("worker %s ended FAILED: %s; its log: %s", worker_id, reason, self.log_path)
        else:
            log.info("worker %s ended STOPPED: %s", worker_id, reason)
        if self.proc is None or not self.proc.running:
            self.shared.ports.release(self.port, worker_id)
        self.settled.set()
        self.revoke()
        return info

    def discard(self, keep_as_failed: str | None = None) -> None:
        """Undo a launch that failed: port back, secret revoked, and the record removed (or,
        with ``keep_as_failed``, left as FAILED with that reason)."""
        if self.probes is not None:
            self.probes.cancel()
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

    # ------------------------------------------------------------------ stopping

    async def _stop_quietly(self, reason: str) -> None:
        with contextlib.suppress(UnknownWorker):
            await self.stop(reason)

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
        self.record()  # UnknownWorker once forgotten
        for action in self.apply(lc.StopRequested(reason)):
            if isinstance(action, lc.Answer):
                return action.outcome
            if isinstance(action, lc.JoinStop):
                return await self._join_stop(give_up_after)
        # Escalate: this call carries the stop out. Set up before the first await, so a
        # second stop can join it.
        self.stop_done = done = anyio.Event()
        outcome = StopOutcome.ALREADY_STOPPED
        try:
            with anyio.CancelScope(shield=True):
                if self.launching is not None:
                    await self.launching.wait()
                outcome = await self._escalate(reason, kill_after, give_up_after)
        finally:
            self.stop_outcome = outcome
            done.set()
        return outcome

    async def _join_stop(self, give_up_after: float) -> StopOutcome:
        done = self.stop_done
        if done is None:  # pragma: no cover - JoinStop only follows an Escalate
            return StopOutcome.TIMED_OUT
        with anyio.move_on_after(give_up_after, shield=True):
            await done.wait()
            return self.stop_outcome
        return StopOutcome.TIMED_OUT

    async def _escalate(self, reason: str, kill_after: float, give_up_after: float) -> StopOutcome:
        proc = self.proc
        if proc is None or not proc.running:
            log.info("worker %s stopped (%s); no process was running", self.worker_id, reason)
            code = None if proc is None else proc.returncode
            self.apply(lc.StopFinished(StopOutcome.ALREADY_STOPPED, code))
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
        self.apply(lc.StopFinished(outcome, proc.returncode, proc.pid))
        return outcome


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
