"""The lifecycle of one worker as a pure transition function: ``step(core, input, now)``.

Every decision about a worker (launch, ready, restart or give up, stop, idle) is taken here,
from the worker's ``Core`` and one input, with no I/O, no clock of its own and no await: it
returns the next ``Core`` and the ``Action`` values the driver (``_worker.WorkerRun``) carries
out (processes, registry writes, timers, published events). Inputs come from the driver's
tasks (a launch ended, a process exited, a probe killed it, a backoff elapsed) and from the
supervisor's callers (start, ready callback, stop, shutdown). Because ``step`` never awaits,
applying an input is atomic with respect to every other task of the event loop.

Phases::

    REGISTERED --Start--> LAUNCHING --Launched--> RUNNING --Exited--> EXITED --Decided--> BACKOFF
        |                     |                      |                   |                  |
        |                     +--LaunchError--> ENDED|                   +--> ENDED         |
        |                                            |                            BackoffOver
        +--StopRequested / ProvisionFailed--> ENDED  +--StopRequested--> STOPPING     |
                                                                |                LAUNCHING
                                                      StopFinished --> ENDED

A worker adopted from an earlier hive starts in RUNNING, ready (``Core.adopted_running``).
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Callable
from typing import Any, TypedDict

import attrs

from rbee_hive_monitor._events import (
    BreakerOpened,
    LifecycleEvent,
    WorkerCrashed,
    WorkerLaunchFailed,
    WorkerReady,
    WorkerStopped,
)
from rbee_hive_monitor._process import describe_exit
from rbee_hive_monitor._stop import StopOutcome
from rbee_hive_registry import WorkerState
from rbee_hive_restart import GiveUp, RestartDecision, StayDown


class Phase(enum.Enum):
    """Where a worker's lifecycle stands (the supervisor's view, finer than ``WorkerState``)."""

    REGISTERED = "registered"
    """Provisioning: waiting for its model; no process yet."""
    LAUNCHING = "launching"
    """A process is being started."""
    RUNNING = "running"
    """A process runs: loading, or ready when ``Core.ready``."""
    EXITED = "exited"
    """Transient: the process exited unasked and the restart policy is being consulted."""
    BACKOFF = "backoff"
    """Waiting before the next launch."""
    STOPPING = "stopping"
    """The hive is stopping it for good."""
    ENDED = "ended"
    """STOPPED, FAILED or discarded: nothing more happens to it."""


@attrs.frozen(kw_only=True)
class Identity:
    """What never changes about a worker; stamped on every event."""

    worker_id: str
    model_ref: str
    backend: str
    device: int
    engine: str


@attrs.frozen(kw_only=True)
class Core:
    """Everything the lifecycle decisions depend on, for one worker. Immutable."""

    identity: Identity
    phase: Phase = Phase.REGISTERED
    launch: int = 0
    """Number of the current (or last) launch; 1 is the spawn."""
    ready: bool = False
    """The current launch reported ready (callback or ready probe) or was adopted."""
    ever_ready: bool = False
    busy: bool = False
    """A request is running on it, as its activity source says."""
    last_use: float | None = None
    """Monotonic time of the last real use (ready, a request, a busy report); None: never."""
    in_grace: bool = False
    """``Supervisor.start`` owns an exit of the first launch until ``early_exit_grace``."""
    forget_on_failure: bool = False
    """A failed first launch removes the record instead of leaving it FAILED."""
    closed: bool = False
    """The hive refuses restarts (it is shutting down)."""
    adopted: bool = False
    kill_reason: str | None = None
    """Why the hive killed the current launch (failed probes, loading timeout)."""
    failed_loading: bool = False
    """The current launch was killed for not being ready in time: never restarted."""
    exit_code: int | None = None
    """Of the last exit seen."""
    last_exit: str | None = None
    """How the last unplanned exit is described in reasons (``was killed by SIGKILL``)."""
    stop_reason: str | None = None

    @classmethod
    def adopted_running(cls, identity: Identity, *, launch: int, now: float) -> Core:
        """A worker whose process already runs and serves (adopted after a hive restart)."""
        return cls(
            identity=identity,
            phase=Phase.RUNNING,
            launch=launch,
            ready=True,
            ever_ready=True,
            adopted=True,
            last_use=now,
        )


# ---------------------------------------------------------------------------------- inputs


@attrs.frozen
class Start:
    """``Supervisor.start``: the model is there, launch the first process."""

    forget_on_failure: bool = False


@attrs.frozen
class ProvisionFailed:
    """The model could not be provided; the worker never launched."""

    reason: str


@attrs.frozen
class Launched:
    """Launch ``launch`` started a process."""

    launch: int


@attrs.frozen
class LaunchError:
    """Launch ``launch`` could not start a process (``code`` from ``LaunchFailed``)."""

    launch: int
    code: str
    message: str


@attrs.frozen
class GraceOver:
    """``early_exit_grace`` passed (or the first launch settled): exits are crashes now."""


@attrs.frozen
class BecameReady:
    """A ready callback or ready probe for launch ``launch``; ``alive``: its process runs."""

    launch: int
    alive: bool
    url: str


@attrs.frozen
class Used:
    """A request started (``busy``) or ended on the worker, as its caller reports."""

    busy: bool


@attrs.frozen
class Activity:
    """The activity source (probe or heartbeat) reports busy or idle; only a change, or a busy
    report, counts as use."""

    busy: bool


@attrs.frozen
class IdleCheck:
    """Is the worker unused for ``limit`` seconds or more?"""

    limit: float


@attrs.frozen
class Kill:
    """The watch kills the current launch: failed probes, or (``loading``) not ready in time."""

    launch: int
    reason: str
    loading: bool = False


@attrs.frozen
class Exited:
    """The process of launch ``launch`` exited with ``exit_code`` (None: not known)."""

    launch: int
    exit_code: int | None


@attrs.frozen
class Decided:
    """The restart policy's answer to the last exit; ``closes_in``: seconds until an open
    breaker would let a restart through."""

    decision: RestartDecision
    closes_in: float = 0.0


@attrs.frozen
class BackoffOver:
    """The wait before the next launch ended (elapsed or cancelled)."""


@attrs.frozen
class Close:
    """The hive refuses new workers and restarts from now on."""


@attrs.frozen
class StopRequested:
    """Stop the worker for good."""

    reason: str


@attrs.frozen
class StopFinished:
    """The stop's escalation ended with ``outcome``."""

    outcome: StopOutcome
    exit_code: int | None
    pid: int | None = None


@attrs.frozen
class HiveGone:
    """The supervisor closed with the worker still live; its process was killed."""

    exit_code: int | None


Input = (
    Start
    | ProvisionFailed
    | Launched
    | LaunchError
    | GraceOver
    | BecameReady
    | Used
    | Activity
    | IdleCheck
    | Kill
    | Exited
    | Decided
    | BackoffOver
    | Close
    | StopRequested
    | StopFinished
    | HiveGone
)


# ---------------------------------------------------------------------------------- actions


@attrs.frozen
class Launch:
    """Start launch ``launch``; ``restart``: in the background (else the caller does it)."""

    launch: int
    restart: bool


@attrs.frozen
class Watch:
    """Watch launch ``launch``: readiness, probes, idleness, and its exit."""

    launch: int


@attrs.frozen
class SetReady:
    """Record LOADING -> IDLE (failed checks reset, last activity now)."""


@attrs.frozen
class RecordUse:
    """Record the worker ``busy`` (BUSY) or not (IDLE), last activity now."""

    busy: bool


@attrs.frozen
class SignalKill:
    """SIGKILL the current launch's process group."""


@attrs.frozen
class Decide:
    """Ask the restart policy about an exit with ``exit_code``; answer with ``Decided``."""

    exit_code: int | None


@attrs.frozen
class ScheduleRestart:
    """Record the exit and the coming restart, then wait ``delay`` s; answer ``BackoffOver``."""

    delay: float
    reason: str
    exit_code: int | None


@attrs.frozen
class CancelBackoff:
    """Cut the current backoff short."""


@attrs.frozen
class CancelWatch:
    """Stop probing the current launch (its exit is still awaited)."""


@attrs.frozen
class MarkStopping:
    """Record STOPPING with the reason."""

    reason: str


@attrs.frozen
class Escalate:
    """(For the stop's caller) stop the current process, after a launch in flight if any;
    answer ``StopFinished``."""


@attrs.frozen
class JoinStop:
    """(For the stop's caller) another stop is under way: share its outcome."""


@attrs.frozen
class Answer:
    """(For the stop's caller) the stop is already over, with ``outcome``."""

    outcome: StopOutcome


@attrs.frozen
class End:
    """Record the end: ``state`` STOPPED or FAILED, with the reason; release what it held."""

    state: WorkerState
    reason: str
    exit_code: int | None


@attrs.frozen
class Discard:
    """Undo a first launch that failed: remove the record, or leave it FAILED with
    ``keep_as_failed``; release what it held."""

    keep_as_failed: str | None


@attrs.frozen
class FailStart:
    """(For ``Supervisor.start``) the first launch exited within ``early_exit_grace``: build
    the error (with the log tail), and discard the worker (``forget``: remove the record)."""

    exit_code: int | None
    forget: bool


@attrs.frozen
class RequestStop:
    """Stop the worker in the background, for ``reason``."""

    reason: str


@attrs.frozen
class Emit:
    """Publish ``event``."""

    event: LifecycleEvent


@attrs.frozen
class Refuse:
    """(For the caller) the input is not allowed now; ``message`` says why."""

    message: str


Action = (
    Launch
    | Watch
    | SetReady
    | RecordUse
    | SignalKill
    | Decide
    | ScheduleRestart
    | CancelBackoff
    | CancelWatch
    | MarkStopping
    | Escalate
    | JoinStop
    | Answer
    | End
    | Discard
    | FailStart
    | RequestStop
    | Emit
    | Refuse
)

Step = tuple[Core, list[Action]]

_P = Phase
_S = WorkerState


# ---------------------------------------------------------------------------------- step


def step(core: Core, event: Input, now: float) -> Step:
    """The next core and the actions for ``event`` arriving at monotonic time ``now``."""
    handler: Callable[[Core, Any, float], Step] = _HANDLERS[type(event)]
    return handler(core, event, now)


class _Stamp(TypedDict):
    worker_id: str
    model_ref: str
    backend: str
    device: int
    engine: str
    launch: int
    at: float


def stamp(core: Core, now: float) -> _Stamp:
    """The fields every event of this worker carries, at ``now``."""
    i = core.identity
    return _Stamp(
        worker_id=i.worker_id,
        model_ref=i.model_ref,
        backend=i.backend,
        device=i.device,
        engine=i.engine,
        launch=core.launch,
        at=now,
    )


def _launch_failed(core: Core, now: float, code: str, reason: str, exit_code: int | None) -> Emit:
    return Emit(
        WorkerLaunchFailed(**stamp(core, now), code=code, reason=reason, exit_code=exit_code)
    )


def _stopped(core: Core, now: float, outcome: StopOutcome, reason: str) -> Emit:
    return Emit(
        WorkerStopped(
            **stamp(core, now),
            outcome=outcome,
            reason=reason,
            exit_code=core.exit_code,
            was_ready=core.ever_ready,
        )
    )


def _start(core: Core, event: Start, now: float) -> Step:
    if core.phase is not _P.REGISTERED:
        return core, [Refuse(f"only a provisioning worker can be started ({core.phase.value})")]
    core = attrs.evolve(
        core,
        phase=_P.LAUNCHING,
        launch=core.launch + 1,
        in_grace=True,
        forget_on_failure=event.forget_on_failure,
    )
    return core, [Launch(core.launch, restart=False)]


def _provision_failed(core: Core, event: ProvisionFailed, now: float) -> Step:
    if core.phase is not _P.REGISTERED:
        return core, [Refuse("only a provisioning worker can be failed this way")]
    core = attrs.evolve(core, phase=_P.ENDED, launch=core.launch + 1)
    return core, [
        End(_S.FAILED, event.reason, None),
        _launch_failed(core, now, "WORKER_MODEL_UNAVAILABLE", event.reason, None),
    ]


def _launched(core: Core, event: Launched, now: float) -> Step:
    if event.launch != core.launch:
        return core, []
    if core.phase is _P.LAUNCHING:
        return attrs.evolve(core, phase=_P.RUNNING), [Watch(core.launch)]
    return core, []  # STOPPING: the stop takes this process down


def _launch_error(core: Core, event: LaunchError, now: float) -> Step:
    if event.launch != core.launch or core.phase not in (_P.LAUNCHING, _P.STOPPING):
        return core, []
    failed = _launch_failed(core, now, event.code, event.message, None)
    if core.phase is _P.STOPPING:
        return core, [failed]  # the stop finds no process and ends it
    if core.in_grace:
        keep = None if core.forget_on_failure else event.message
        return attrs.evolve(core, phase=_P.ENDED), [Discard(keep), failed]
    reason = f"{core.last_exit}; restart failed: {event.message}"
    return attrs.evolve(core, phase=_P.ENDED), [End(_S.FAILED, reason, core.exit_code), failed]


def _ready(core: Core, event: BecameReady, now: float) -> Step:
    if not (
        core.phase is _P.RUNNING and event.launch == core.launch and event.alive and not core.ready
    ):
        why = "already ready" if core.ready else f"{core.phase.value}"
        return core, [Refuse(f"launch {event.launch} cannot become ready: {why}")]
    core = attrs.evolve(core, ready=True, ever_ready=True, busy=False, last_use=now)
    ready = WorkerReady(**stamp(core, now), url=event.url)
    return core, [SetReady(), Emit(ready)]


def _serving(core: Core) -> bool:
    return core.phase is _P.RUNNING and core.ready


def _used(core: Core, event: Used, now: float) -> Step:
    if not _serving(core):
        return core, [Refuse("not ready for requests")]
    return attrs.evolve(core, busy=event.busy, last_use=now), [RecordUse(event.busy)]


def _activity(core: Core, event: Activity, now: float) -> Step:
    if not _serving(core) or not (event.busy or core.busy):
        return core, []  # idle and still idle: no use, nothing to record
    return attrs.evolve(core, busy=event.busy, last_use=now), [RecordUse(event.busy)]


def _idle_check(core: Core, event: IdleCheck, now: float) -> Step:
    if not _serving(core) or core.busy or core.last_use is None:
        return core, []
    idle = now - core.last_use
    if idle < event.limit:
        return core, []
    return core, [RequestStop(f"idle for {idle:.1f} s (idle_timeout {event.limit:g} s)")]


def _kill(core: Core, event: Kill, now: float) -> Step:
    if core.phase is not _P.RUNNING or event.launch != core.launch or core.kill_reason:
        return core, []
    core = attrs.evolve(core, kill_reason=event.reason, failed_loading=event.loading)
    return core, [SignalKill()]


def _exited(core: Core, event: Exited, now: float) -> Step:
    if event.launch != core.launch:
        return core, []
    if core.phase is _P.STOPPING:
        return attrs.evolve(core, exit_code=event.exit_code), []
    if core.phase is not _P.RUNNING:
        return core, []
    code = event.exit_code
    what = core.kill_reason or describe_exit(code)
    core = attrs.evolve(core, exit_code=code, last_exit=what, ready=False, busy=False)
    if core.in_grace:
        reason = f"{describe_exit(code)} within early_exit_grace"
        return attrs.evolve(core, phase=_P.ENDED), [
            FailStart(code, forget=core.forget_on_failure),
            _launch_failed(core, now, "WORKER_EXITED_EARLY", reason, code),
        ]
    if core.failed_loading:
        reason = f"{what}; not restarted"
        return attrs.evolve(core, phase=_P.ENDED), [
            End(_S.FAILED, reason, code),
            _launch_failed(core, now, "WORKER_LOADING_TIMEOUT", reason, code),
        ]
    if core.closed:
        reason = f"{what} during hive shutdown"
        killed = code == -signal.SIGKILL
        outcome = StopOutcome.FORCED if killed else StopOutcome.GRACEFUL
        return attrs.evolve(core, phase=_P.ENDED), [
            End(_S.STOPPED, reason, code),
            _stopped(core, now, outcome, reason),
        ]
    return attrs.evolve(core, phase=_P.EXITED), [Decide(code)]


def _crashed(core: Core, now: float, reason: str, restart_in: float | None) -> Emit:
    return Emit(
        WorkerCrashed(
            **stamp(core, now),
            exit_code=core.exit_code,
            reason=reason,
            restart_in=restart_in,
        )
    )


def _decided(core: Core, event: Decided, now: float) -> Step:
    if core.phase is not _P.EXITED:
        return core, []
    decision, what, code = event.decision, core.last_exit, core.exit_code
    if isinstance(decision, GiveUp):
        reason = (
            f"{what}; gave up: {decision.reason}; the breaker would close in "
            f"{event.closes_in:.0f} s"
        )
        opened = BreakerOpened(**stamp(core, now), reason=reason, closes_in=event.closes_in)
        return attrs.evolve(core, phase=_P.ENDED), [
            End(_S.FAILED, reason, code),
            _crashed(core, now, reason, None),
            Emit(opened),
        ]
    if isinstance(decision, StayDown):
        reason = f"{what}; not restarted: {decision.reason}"
        state = _S.STOPPED if code == 0 else _S.FAILED
        return attrs.evolve(core, phase=_P.ENDED), [
            End(state, reason, code),
            _crashed(core, now, reason, None),
        ]
    reason = f"{what}; restart {decision.attempt} in {decision.delay:.3g} s"
    return attrs.evolve(core, phase=_P.BACKOFF), [
        ScheduleRestart(decision.delay, reason, code),
        _crashed(core, now, reason, decision.delay),
    ]


def _backoff_over(core: Core, event: BackoffOver, now: float) -> Step:
    if core.phase is not _P.BACKOFF:
        return core, []
    if core.closed:
        reason = f"{core.last_exit}; restart cancelled: the hive is shutting down"
        return attrs.evolve(core, phase=_P.ENDED), [
            End(_S.STOPPED, reason, core.exit_code),
            _stopped(core, now, StopOutcome.ALREADY_STOPPED, reason),
        ]
    core = attrs.evolve(
        core,
        phase=_P.LAUNCHING,
        launch=core.launch + 1,
        kill_reason=None,
        failed_loading=False,
        adopted=False,
    )
    return core, [Launch(core.launch, restart=True)]


def _close(core: Core, event: Close, now: float) -> Step:
    closed = attrs.evolve(core, closed=True)
    return closed, [CancelBackoff()] if core.phase is _P.BACKOFF else []


def _stop(core: Core, event: StopRequested, now: float) -> Step:
    phase = core.phase
    if phase is _P.ENDED:
        return core, [Answer(StopOutcome.ALREADY_STOPPED)]
    if phase is _P.STOPPING:
        return core, [JoinStop()]
    stopping = MarkStopping(f"stopping: {event.reason}")
    if phase in (_P.REGISTERED, _P.BACKOFF, _P.EXITED):
        reason = f"stopped: {event.reason}"
        ended = attrs.evolve(core, phase=_P.ENDED, stop_reason=event.reason)
        cancel: list[Action] = [CancelBackoff()] if phase is _P.BACKOFF else []
        return ended, [
            stopping,
            *cancel,
            End(_S.STOPPED, reason, core.exit_code),
            _stopped(ended, now, StopOutcome.ALREADY_STOPPED, reason),
            Answer(StopOutcome.ALREADY_STOPPED),
        ]
    core = attrs.evolve(core, phase=_P.STOPPING, stop_reason=event.reason, in_grace=False)
    watch: list[Action] = [CancelWatch()] if phase is _P.RUNNING else []
    return core, [stopping, *watch, Escalate()]


def _stop_finished(core: Core, event: StopFinished, now: float) -> Step:
    if core.phase is not _P.STOPPING:
        return core, []
    core = attrs.evolve(core, phase=_P.ENDED, exit_code=event.exit_code)
    if event.outcome is StopOutcome.TIMED_OUT:
        reason = f"stop ({core.stop_reason}) could not reap pid {event.pid}"
        return core, [End(_S.FAILED, reason, None), _stopped(core, now, event.outcome, reason)]
    reason = f"stopped: {core.stop_reason}"
    return core, [
        End(_S.STOPPED, reason, event.exit_code),
        _stopped(core, now, event.outcome, reason),
    ]


def _grace_over(core: Core, event: GraceOver, now: float) -> Step:
    return attrs.evolve(core, in_grace=False), []


def _hive_gone(core: Core, event: HiveGone, now: float) -> Step:
    if core.phase is _P.ENDED:
        return core, []
    had_process = core.phase in (_P.LAUNCHING, _P.RUNNING, _P.STOPPING)
    outcome = StopOutcome.FORCED if had_process else StopOutcome.ALREADY_STOPPED
    reason = "the hive stopped; its process was killed"
    core = attrs.evolve(core, phase=_P.ENDED, exit_code=event.exit_code)
    return core, [End(_S.STOPPED, reason, event.exit_code), _stopped(core, now, outcome, reason)]


_HANDLERS: dict[type[Input], Callable[[Core, Any, float], Step]] = {
    Start: _start,
    ProvisionFailed: _provision_failed,
    Launched: _launched,
    LaunchError: _launch_error,
    GraceOver: _grace_over,
    BecameReady: _ready,
    Used: _used,
    Activity: _activity,
    IdleCheck: _idle_check,
    Kill: _kill,
    Exited: _exited,
    Decided: _decided,
    BackoffOver: _backoff_over,
    Close: _close,
    StopRequested: _stop,
    StopFinished: _stop_finished,
    HiveGone: _hive_gone,
}
