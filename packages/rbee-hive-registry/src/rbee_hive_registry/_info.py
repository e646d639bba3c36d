"""The worker record."""

from __future__ import annotations

from datetime import datetime

import attrs

from rbee_hive_registry._state import WorkerState


@attrs.frozen(kw_only=True)
class WorkerInfo:
    """One worker as the hive knows it. Frozen: change it through the registry.

    The first fourteen fields are the original hive's wire fields, with the same names;
    the rest are what supervision needs. ``revision`` is set by the registry (0 when
    registered) and grows by one on every write, which is what compare-and-set updates
    compare.
    """

    id: str
    url: str
    model_ref: str
    backend: str
    device: int
    state: WorkerState
    last_activity: datetime
    slots_total: int = 1
    slots_available: int = 0
    failed_health_checks: int = 0
    pid: int | None = None
    restart_count: int = 0
    last_restart: datetime | None = None
    last_heartbeat: datetime | None = None
    # What supervision needs on top of the original record.
    port: int
    engine: str = "rbee"
    model_path: str = ""
    started_at: datetime | None = None
    """When the current process was launched; None while no process runs."""
    exit_code: int | None = None
    """Exit status of the last process that ended (negative: killed by that signal)."""
    reason: str | None = None
    """Why the worker is where it is, for a person: the last exit, the failure, the stop."""
    revision: int = 0
