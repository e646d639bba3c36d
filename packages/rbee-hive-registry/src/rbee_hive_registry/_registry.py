"""The in-memory worker registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from rbee_hive_registry._feed import ChangeKind, Feed, Subscription, WorkerEvent
from rbee_hive_registry._info import WorkerInfo
from rbee_hive_registry._state import TRANSITIONS, WorkerState
from rbee_hive_registry.exceptions import (
    DuplicateWorker,
    IllegalTransition,
    StaleUpdate,
    WorkerNotFound,
)

_GUARDED_FIELDS = frozenset({"id", "state", "revision"})
_FIELD_NAMES = tuple(f.name for f in attrs.fields(WorkerInfo))


def _evolve(worker: WorkerInfo, changes: dict[str, Any]) -> WorkerInfo:
    # attrs.evolve looks the fields up on every call; the registry writes on every probe,
    # so it keeps the names once. Unknown names still fail in WorkerInfo's __init__.
    values = {name: getattr(worker, name) for name in _FIELD_NAMES}
    values.update(changes)
    return WorkerInfo(**values)


class WorkerRegistry:
    """Every worker of this hive, keyed by id, listed in registration order.

    No method awaits, so each call is atomic with respect to other anyio tasks on the same
    event loop; that is the concurrency contract. Use it from one event loop (or one thread).
    Every write bumps the record's ``revision``; pass ``expected_revision`` (or
    ``expected_state``) to make a write conditional on what you read, so a decision taken
    on a stale read can never undo a newer change.
    """

    def __init__(self, *, feed_capacity: int = 1024) -> None:
        self._workers: dict[str, WorkerInfo] = {}
        self._counts: dict[WorkerState, int] = dict.fromkeys(WorkerState, 0)
        self._feed: Feed[WorkerEvent] = Feed(feed_capacity)
        self._generation = 0

    def __repr__(self) -> str:
        counts = {s.value: n for s, n in self._counts.items() if n}
        return (
            f"<WorkerRegistry workers={len(self._workers)} {counts} subscribers={len(self._feed)}>"
        )

    @property
    def generation(self) -> int:
        """Grows by one on every write to any worker: equal generations, equal contents.
        Readers that derive something costly from ``list()`` can cache it on this."""
        return self._generation

    def __len__(self) -> int:
        return len(self._workers)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._workers

    def __iter__(self) -> Iterator[WorkerInfo]:
        return iter(list(self._workers.values()))

    # ------------------------------------------------------------------ reads

    def get(self, worker_id: str) -> WorkerInfo | None:
        """The worker, or None."""
        return self._workers.get(worker_id)

    def require(self, worker_id: str) -> WorkerInfo:
        """The worker; raises ``WorkerNotFound``."""
        try:
            return self._workers[worker_id]
        except KeyError:
            raise WorkerNotFound(worker_id) from None

    def list(self, state: WorkerState | None = None) -> list[WorkerInfo]:
        """A snapshot of the workers in registration order, optionally of one state."""
        if state is None:
            return list(self._workers.values())
        return [w for w in self._workers.values() if w.state is state]

    def find_idle(self, model_ref: str) -> WorkerInfo | None:
        """The first idle worker serving exactly ``model_ref``, or None."""
        for worker in self._workers.values():
            if worker.state is WorkerState.IDLE and worker.model_ref == model_ref:
                return worker
        return None

    def counts_by_state(self) -> dict[WorkerState, int]:
        """How many workers are in each state; every state is present, zero included."""
        return dict(self._counts)

    # ------------------------------------------------------------------ writes

    def register(self, info: WorkerInfo) -> WorkerInfo:
        """Add a new worker; raises ``DuplicateWorker`` if the id is taken."""
        if info.id in self._workers:
            raise DuplicateWorker(info.id)
        stored = info if info.revision == 0 else _evolve(info, {"revision": 0})
        self._workers[info.id] = stored
        self._counts[stored.state] += 1
        self._publish(WorkerEvent(ChangeKind.ADDED, stored))
        return stored

    def transition(
        self,
        worker_id: str,
        target: WorkerState,
        *,
        expected_revision: int | None = None,
        expected_state: WorkerState | None = None,
        **changes: Any,
    ) -> WorkerInfo:
        """Move the worker to ``target`` (and set ``changes`` in the same write).

        Raises ``IllegalTransition`` if the move is not in ``TRANSITIONS`` and ``StaleUpdate``
        if the record no longer matches ``expected_revision`` / ``expected_state``.
        """
        current = self._check(worker_id, expected_revision, expected_state)
        if target not in TRANSITIONS[current.state]:
            raise IllegalTransition(worker_id, current.state.value, target.value)
        return self._write(current, target, changes)

    def update(
        self,
        worker_id: str,
        *,
        expected_revision: int | None = None,
        expected_state: WorkerState | None = None,
        **changes: Any,
    ) -> WorkerInfo:
        """Change fields other than ``id``, ``state`` and ``revision``; conditional like
        ``transition``."""
        current = self._check(worker_id, expected_revision, expected_state)
        return self._write(current, current.state, changes)

    def remove(self, worker_id: str) -> WorkerInfo:
        """Forget the worker; raises ``WorkerNotFound``. The caller owns its process."""
        removed = self._workers.pop(worker_id, None)
        if removed is None:
            raise WorkerNotFound(worker_id)
        self._counts[removed.state] -= 1
        self._publish(WorkerEvent(ChangeKind.REMOVED, removed, removed))
        return removed

    # ------------------------------------------------------------------ feed

    def subscribe(self, capacity: int | None = None) -> Subscription[WorkerEvent]:
        """Follow every change from now on; see ``Subscription`` and ``FeedLagged``."""
        return self._feed.subscribe(capacity)

    # ------------------------------------------------------------------ internals

    def _check(
        self,
        worker_id: str,
        expected_revision: int | None,
        expected_state: WorkerState | None,
    ) -> WorkerInfo:
        current = self.require(worker_id)
        if expected_revision is not None and current.revision != expected_revision:
            raise StaleUpdate(
                worker_id, f"revision {expected_revision}", f"revision {current.revision}"
            )
        if expected_state is not None and current.state is not expected_state:
            raise StaleUpdate(
                worker_id, f"state {expected_state.value}", f"state {current.state.value}"
            )
        return current

    def _write(
        self, current: WorkerInfo, target: WorkerState, changes: dict[str, Any]
    ) -> WorkerInfo:
        guarded = _GUARDED_FIELDS.intersection(changes)
        if guarded:
            raise TypeError(
                f"{sorted(guarded)} cannot be set this way: use transition() for the state; "
                "id and revision belong to the registry"
            )
        changes["state"] = target
        changes["revision"] = current.revision + 1
        updated = _evolve(current, changes)
        self._workers[current.id] = updated
        if target is not current.state:
            self._counts[current.state] -= 1
            self._counts[target] += 1
        self._publish(WorkerEvent(ChangeKind.UPDATED, updated, current))
        return updated

    def _publish(self, event: WorkerEvent) -> None:
        self._generation += 1
        self._feed.publish(event)
