"""What the supervisor is configured with, and what a caller asks it to run."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import attrs

from rbee_hive_monitor.exceptions import InvalidSupervisorSetting, InvalidWorkerSpec
from rbee_hive_restart import Backoff, BreakerSettings, RestartPolicy

WORKER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""A worker id: letters, digits, ``_`` and ``-`` (it becomes a file name and an argv value)."""


def _require(ok: bool, setting: str, value: object, expected: str) -> None:
    if not ok:
        raise InvalidSupervisorSetting(f"setting {setting} must be {expected}, got {value!r}")


@attrs.frozen(kw_only=True)
class SupervisorSettings:
    """Timings, ports and restart policy of the supervisor. Durations are in seconds.

    ``worker_host`` goes into worker URLs (the composition layer reads ``RBEE_WORKER_HOST``);
    ``bind_host`` is the ``{host}`` a server engine is told to listen on.
    """

    log_dir: Path = attrs.field(converter=Path)
    """Where ``<worker-id>.log`` files go: ``<state-dir>/workers``."""
    worker_host: str = "127.0.0.1"
    bind_host: str = "127.0.0.1"
    port_range: tuple[int, int] = (8081, 9000)
    """First and last port (inclusive) a worker may get."""
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    probe_failure_threshold: int = 3
    """Consecutive failed probes after which the worker is killed and handled like a crash."""
    loading_timeout: float = 600.0
    """A launch that is not ready by then is killed and FAILED (not restarted)."""
    ready_poll_interval: float = 0.5
    """How often an ``http``-readiness engine's ``ready_path`` is polled while loading."""
    heartbeat_stale_after: float = 120.0
    """Once a first heartbeat arrived, a heartbeat older than this counts as a failed probe."""
    early_exit_grace: float = 0.3
    """``start`` waits this long for an early exit before it returns."""
    stop_timeout: float = 10.0
    """Time from the graceful signal to SIGKILL."""
    http_shutdown_timeout: float = 2.0
    """How long the optional HTTP shutdown request (and the exit after it) may take."""
    restart_policy: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff: Backoff = attrs.field(factory=Backoff)
    breaker: BreakerSettings = attrs.field(factory=BreakerSettings)
    stable_after: float = 600.0
    """A process that ran this long resets the backoff."""
    idle_timeout: float | None = None
    """Stop an idle worker this long after its last real use; None: never."""
    state_file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """Where running workers are written down (``<state-dir>/workers.json``), so that a hive
    restarted after a crash or ``kill -9`` adopts the workers still running; None: not kept,
    and nothing is adopted."""
    kill_workers_on_exit: bool = False
    """Workers get PR_SET_PDEATHSIG (SIGTERM): they die with the hive, however it ends, so a
    killed hive leaves no workers to adopt. Linux only."""

    def __attrs_post_init__(self) -> None:
        first, last = self.port_range
        _require(
            isinstance(first, int) and isinstance(last, int) and 1 <= first <= last <= 65535,
            "port_range",
            self.port_range,
            "(first, last) with 1 <= first <= last <= 65535",
        )
        for name in (
            "probe_interval",
            "probe_timeout",
            "loading_timeout",
            "ready_poll_interval",
            "heartbeat_stale_after",
            "stop_timeout",
            "http_shutdown_timeout",
            "stable_after",
        ):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, name, value, "a number of seconds > 0")
        _require(
            math.isfinite(self.early_exit_grace) and self.early_exit_grace >= 0,
            "early_exit_grace",
            self.early_exit_grace,
            "a number of seconds >= 0",
        )
        _require(
            isinstance(self.probe_failure_threshold, int) and self.probe_failure_threshold >= 1,
            "probe_failure_threshold",
            self.probe_failure_threshold,
            "an integer >= 1",
        )
        if self.idle_timeout is not None:
            _require(
                math.isfinite(self.idle_timeout) and self.idle_timeout > 0,
                "idle_timeout",
                self.idle_timeout,
                "a number of seconds > 0, or None to never stop idle workers",
            )
        if self.kill_workers_on_exit and not sys.platform.startswith("linux"):
            raise InvalidSupervisorSetting(
                "setting kill_workers_on_exit needs Linux (PR_SET_PDEATHSIG); this is "
                f"{sys.platform}. Turn it off: workers then outlive a killed hive"
            )
        for name in ("worker_host", "bind_host"):
            value = getattr(self, name)
            _require(
                bool(value) and not any(c in value for c in "/ @?#"),
                name,
                value,
                "a host name or IP address",
            )


def _frozen_env(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen(kw_only=True)
class WorkerSpec:
    """What to run: a model on a backend and device, with an engine; optionally a fixed id.

    ``env`` is added to the worker's environment (e.g. ``CUDA_VISIBLE_DEVICES``).
    """

    model_ref: str
    backend: str = "cpu"
    device: int = 0
    engine: str = "rbee"
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env, eq=False)
    worker_id: str | None = None

    @property
    def visible_device(self) -> int:
        """The device number as the worker sees it: 0 when ``CUDA_VISIBLE_DEVICES`` pins it
        to one GPU (CUDA renumbers the visible GPUs from 0), else ``device``. The registry
        keeps ``device``, the index the host knows the GPU by."""
        pinned = self.env.get("CUDA_VISIBLE_DEVICES", "")
        if pinned and "," not in pinned:
            return 0
        return self.device

    def __attrs_post_init__(self) -> None:
        if self.worker_id is not None and not WORKER_ID_PATTERN.fullmatch(self.worker_id):
            raise InvalidWorkerSpec(
                f"worker id {self.worker_id!r} is not valid: use 1 to 256 letters, digits, "
                "'_' or '-'"
            )
        if isinstance(self.device, bool) or not isinstance(self.device, int) or self.device < 0:
            raise InvalidWorkerSpec(f"device must be an integer >= 0, got {self.device!r}")
        if not self.model_ref:
            raise InvalidWorkerSpec("model_ref must not be empty")
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
                raise InvalidWorkerSpec(
                    f"env must map variable names to strings, got {key!r}: {value!r}"
                )
