"""The worker state machine: the states and, in one place, the moves between them."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class WorkerState(enum.Enum):
    """Where a worker is in its life; the value is the wire spelling."""

    PROVISIONING = "provisioning"
    """Registered, waiting for its model to be downloaded; no process yet."""
    LOADING = "loading"
    """A process was launched (or is about to be relaunched) and is not ready yet."""
    IDLE = "idle"
    """Ready and not serving a request."""
    BUSY = "busy"
    """Ready and serving a request."""
    STOPPING = "stopping"
    """The hive is stopping it; it will not be restarted."""
    STOPPED = "stopped"
    """Stopped on purpose and reaped; terminal."""
    FAILED = "failed"
    """Gave up on: launch failed, model failed, or the crash-loop breaker opened; terminal."""

    @property
    def is_terminal(self) -> bool:
        """True for states no worker ever leaves."""
        return not TRANSITIONS[self]

    @property
    def is_ready(self) -> bool:
        """True when the worker can take requests."""
        return self in (WorkerState.IDLE, WorkerState.BUSY)


_S = WorkerState

TRANSITIONS: Mapping[WorkerState, frozenset[WorkerState]] = {
    # Download finished -> launch; download failed -> failed; DELETE while downloading.
    _S.PROVISIONING: frozenset({_S.LOADING, _S.FAILED, _S.STOPPING}),
    # Ready; launch failed or loading timed out; DELETE or shutdown.
    _S.LOADING: frozenset({_S.IDLE, _S.FAILED, _S.STOPPING}),
    # A crash of a ready worker goes back to LOADING when a restart is scheduled.
    _S.IDLE: frozenset({_S.BUSY, _S.LOADING, _S.FAILED, _S.STOPPING}),
    _S.BUSY: frozenset({_S.IDLE, _S.LOADING, _S.FAILED, _S.STOPPING}),
    # A stop ends in STOPPED once the process is reaped; FAILED if it could not be reaped.
    _S.STOPPING: frozenset({_S.STOPPED, _S.FAILED}),
    _S.STOPPED: frozenset(),
    _S.FAILED: frozenset(),
}
"""Every allowed move. Staying in the same state is not a transition: use ``update``."""


def transition_allowed(current: WorkerState, target: WorkerState) -> bool:
    """Whether ``current -> target`` is in the table."""
    return target in TRANSITIONS[current]
