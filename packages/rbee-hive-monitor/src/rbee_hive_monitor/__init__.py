"""The rbee-hive Supervisor: launch, watch, probe, restart and stop worker processes.

``Supervisor`` (opened with ``Supervisor.open``) does the work; ``EngineSpec`` and the
``rbee_engine`` / ``openai_engine`` / ``engine_from_config`` factories say how a kind of worker is
run; ``SupervisorSettings`` holds timings, ports and restart policy; ``WorkerSpec`` is what to
run; ``StopOutcome`` / ``StopReport`` say how stops ended. ``WorkerPool`` is the spawn flow
above the supervisor: model -> file or download -> placement and admission -> launch, the
model-in-use rule, and admissions given back when workers end. ``Supervisor.subscribe`` yields
the typed lifecycle events (``LifecycleEvent``: ``WorkerReady``, ``WorkerCrashed``,
``BreakerOpened``, ``WorkerLaunchFailed``, ``WorkerStopped``, ``HealthCheckFailed``);
``Supervisor.totals`` counts them (``LifecycleTotals``) for a consumer that lagged.
"""

from rbee_hive_monitor._availability import (
    LLAMA_CPP_FIX,
    EngineAvailability,
    engine_availability,
)
from rbee_hive_monitor._engine import (
    ACTIVITY_SOURCES,
    LLAMA_CPP_PYTHON_ARGV,
    PLACEHOLDERS,
    EngineSpec,
    engine_from_config,
    openai_engine,
    rbee_engine,
)
from rbee_hive_monitor._events import (
    COUNTS,
    BreakerOpened,
    HealthCheckFailed,
    LifecycleEvent,
    LifecycleTotals,
    WorkerCrashed,
    WorkerLaunchFailed,
    WorkerReady,
    WorkerStopped,
    counted_as,
)
from rbee_hive_monitor._handle import ProcessHandle
from rbee_hive_monitor._http import AiohttpWorkerHttp, HttpAnswer, WorkerHttp
from rbee_hive_monitor._pool import (
    AuditTrail,
    Resync,
    SpawnCounters,
    SpawnRequest,
    StoppedWorker,
    WorkerPool,
)
from rbee_hive_monitor._ports import port_is_free
from rbee_hive_monitor._process import mask_url
from rbee_hive_monitor._settings import SupervisorSettings, WorkerSpec
from rbee_hive_monitor._stop import StopOutcome, StopReport
from rbee_hive_monitor._supervisor import Supervisor
from rbee_hive_monitor._worker import WorkerCallbacks
from rbee_hive_monitor.exceptions import (
    EngineUnavailable,
    InvalidEngine,
    InvalidSupervisorSetting,
    InvalidWorkerSpec,
    LaunchFailed,
    ModelInUse,
    MonitorError,
    NoFreePort,
    StateFileInUse,
    SupervisorClosed,
    UnknownEngine,
    UnknownWorker,
    WorkerConflict,
    WorkerNotReadyable,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "ACTIVITY_SOURCES",
    "COUNTS",
    "LLAMA_CPP_FIX",
    "LLAMA_CPP_PYTHON_ARGV",
    "PLACEHOLDERS",
    "AiohttpWorkerHttp",
    "AuditTrail",
    "BreakerOpened",
    "EngineAvailability",
    "EngineSpec",
    "EngineUnavailable",
    "HealthCheckFailed",
    "HttpAnswer",
    "InvalidEngine",
    "InvalidSupervisorSetting",
    "InvalidWorkerSpec",
    "LaunchFailed",
    "LifecycleEvent",
    "LifecycleTotals",
    "ModelInUse",
    "MonitorError",
    "NoFreePort",
    "ProcessHandle",
    "Resync",
    "SpawnCounters",
    "SpawnRequest",
    "StateFileInUse",
    "StopOutcome",
    "StopReport",
    "StoppedWorker",
    "Supervisor",
    "SupervisorClosed",
    "SupervisorSettings",
    "UnknownEngine",
    "UnknownWorker",
    "WorkerCallbacks",
    "WorkerConflict",
    "WorkerCrashed",
    "WorkerHttp",
    "WorkerLaunchFailed",
    "WorkerNotReadyable",
    "WorkerPool",
    "WorkerReady",
    "WorkerSpec",
    "WorkerStopped",
    "__version__",
    "counted_as",
    "engine_availability",
    "engine_from_config",
    "mask_url",
    "openai_engine",
    "port_is_free",
    "rbee_engine",
]
