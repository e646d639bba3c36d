"""Errors raised by the worker registry; each says when it is raised."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every error the registry raises."""


class WorkerNotFound(RegistryError, LookupError):
    """Raised when an operation names a worker id that is not registered."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} is not registered")
        self.worker_id = worker_id


class DuplicateWorker(RegistryError):
    """Raised by ``register`` when a worker with the same id is already registered."""

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} is already registered; ids are never reused")
        self.worker_id = worker_id


class IllegalTransition(RegistryError):
    """Raised when a state change is not in the allowed transition table."""

    def __init__(self, worker_id: str, current: str, target: str) -> None:
        super().__init__(
            f"worker {worker_id!r} cannot go from {current!r} to {target!r}; "
            "see rbee_hive_registry.TRANSITIONS for the allowed moves"
        )
        self.worker_id = worker_id
        self.current = current
        self.target = target


class StaleUpdate(RegistryError):
    """Raised when a compare-and-set update was based on an outdated read of the worker.

    The caller expected ``expected`` (a revision or a state) but the record now shows
    ``actual``: somebody else wrote in between. Re-read the worker and decide again; never
    overwrite blindly.
    """

    def __init__(self, worker_id: str, expected: str, actual: str) -> None:
        super().__init__(
            f"worker {worker_id!r} changed since it was read "
            f"(expected {expected}, found {actual}); re-read it and decide again"
        )
        self.worker_id = worker_id
        self.expected = expected
        self.actual = actual


class InvalidWorkerRecord(RegistryError, ValueError):
    """Raised when JSON input does not describe a valid worker (unknown state, wrong type)."""
