"""Errors raised by the supervisor; each says when it is raised and carries a stable ``code``.

``code`` is an UPPER_SNAKE string the HTTP layer puts in its error envelope unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence


class MonitorError(Exception):
    """Base class of every error the supervisor raises."""

    code: str = "MONITOR_ERROR"


class InvalidEngine(MonitorError, ValueError):
    """Raised when an engine definition is malformed; the message names the engine and key."""

    code = "INVALID_ENGINE"


class InvalidSupervisorSetting(MonitorError, ValueError):
    """Raised when a ``SupervisorSettings`` value is out of range; the message names it."""

    code = "INVALID_SETTING"


class StateFileInUse(InvalidSupervisorSetting):
    """Raised by ``Supervisor.open`` when another running hive keeps the same ``state_file``
    (two hives adopting each other's workers would stop them)."""

    code = "STATE_FILE_IN_USE"


class InvalidWorkerSpec(MonitorError, ValueError):
    """Raised by ``register``/``spawn`` for a malformed ``WorkerSpec`` (bad id, bad device)."""

    code = "INVALID_WORKER_SPEC"


class UnknownEngine(MonitorError, LookupError):
    """Raised by ``register``/``spawn`` when the spec names an engine the supervisor lacks."""

    code = "UNKNOWN_ENGINE"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(
            f"engine {name!r} is not configured; configured engines: {', '.join(known) or 'none'}"
        )
        self.name = name


class UnknownWorker(MonitorError, LookupError):
    """Raised when an operation names a worker id the supervisor does not know (HTTP 404)."""

    code = "WORKER_NOT_FOUND"

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} is not known to this hive")
        self.worker_id = worker_id


class WorkerConflict(MonitorError):
    """Raised when a worker is not in a state the operation allows (HTTP 409): ``start`` on a
    worker that is not provisioning, ``forget`` on a live worker, a duplicate fixed id..."""

    code = "WORKER_STATE_CONFLICT"

    def __init__(self, worker_id: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        if code is not None:
            self.code = code


class WorkerNotReadyable(WorkerConflict):
    """Raised by ``mark_ready`` when the worker is not loading a live process of its current
    launch (already ready, stopping, waiting for a restart, or a stale callback)."""

    code = "WORKER_NOT_LOADING"

    def __init__(self, worker_id: str, message: str) -> None:
        super().__init__(worker_id, message)


class LaunchFailed(MonitorError):
    """Raised by ``start``/``spawn`` when the worker process could not be started or exited
    within ``early_exit_grace``. Nothing stays registered and nothing keeps running.

    ``code`` is ``WORKER_BINARY_NOT_FOUND``, ``WORKER_BINARY_NOT_EXECUTABLE``,
    ``WORKER_EXITED_EARLY`` or ``WORKER_LAUNCH_FAILED``; ``log_tail`` holds the last lines the
    worker wrote (secrets masked).
    """

    code = "WORKER_LAUNCH_FAILED"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        worker_id: str,
        exit_code: int | None = None,
        log_tail: Sequence[str] = (),
    ) -> None:
        tail = "".join(f"\n    | {line}" for line in log_tail)
        super().__init__(message + (f"\n  last lines of the worker's log:{tail}" if tail else ""))
        self.code = code
        self.worker_id = worker_id
        self.exit_code = exit_code
        self.log_tail = tuple(log_tail)


class EngineUnavailable(LaunchFailed):
    """Raised before anything is registered or started when the engine cannot run here
    (``engine_availability``): its program is not installed (code
    ``WORKER_BINARY_NOT_FOUND``) or a Python module it needs is missing (code
    ``ENGINE_UNAVAILABLE``). The message says what is missing and how to install it."""

    def __init__(
        self, engine: str, detail: str, fix: str | None, *, code: str, worker_id: str = ""
    ) -> None:
        super().__init__(
            f"engine {engine!r} cannot start workers on this machine: {detail}"
            + (f"; fix: {fix}" if fix else ""),
            code=code,
            worker_id=worker_id,
        )
        self.engine = engine


class NoFreePort(MonitorError):
    """Raised when every port of ``port_range`` is held by a worker, reserved or busy."""

    code = "NO_FREE_PORT"

    def __init__(self, first: int, last: int) -> None:
        super().__init__(
            f"no free port for a worker in {first}-{last} (setting port_range): every port is "
            "held by a worker or by another process; stop workers or widen port_range"
        )
        self.port_range = (first, last)


class SupervisorClosed(MonitorError):
    """Raised by ``register``/``spawn``/``start`` after ``refuse_new`` (the hive is stopping)."""

    code = "SHUTTING_DOWN"

    def __init__(self) -> None:
        super().__init__("the hive is shutting down and starts no new workers")


class ModelInUse(MonitorError):
    """Raised by ``WorkerPool.remove_model`` while live workers use the model (HTTP 409);
    ``workers`` are their ids. Nothing was removed."""

    code = "MODEL_IN_USE"

    def __init__(self, model_ref: str, workers: Sequence[str]) -> None:
        super().__init__(
            f"model {model_ref!r} is used by {len(workers)} worker(s); stop them first"
        )
        self.model_ref = model_ref
        self.workers = tuple(workers)
