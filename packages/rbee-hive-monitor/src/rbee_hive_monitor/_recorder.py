"""Keeping the adoption state file in step with the registry.

``StateRecorder`` follows the registry's change feed and, whenever the set of running workers
or what adoption needs of them changes (a launch, readiness, a stop, an exit, a new port),
rewrites the state file. Heartbeats and probes change nothing it writes, so they cost no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import anyio.abc
import attrs

from rbee_hive_monitor._identity import ProcessIdentity, current_boot_id, read_identity
from rbee_hive_monitor._state_file import PersistedWorker, StateFile
from rbee_hive_registry import WorkerInfo, WorkerRegistry, WorkerState

log = logging.getLogger("rbee_hive.monitor")

_RUNNING = frozenset(
    {WorkerState.LOADING, WorkerState.IDLE, WorkerState.BUSY, WorkerState.STOPPING}
)
"""States whose process is written down; only the ready ones are adopted, the others are
stopped by the next hive (a stop that was under way is finished, not undone)."""
_READY = frozenset({WorkerState.IDLE, WorkerState.BUSY})


@attrs.frozen(kw_only=True)
class LaunchDetails:
    """What the registry record lacks and the supervisor knows about a worker's launch."""

    env: Mapping[str, str]
    callback_url: str | None = attrs.field(repr=False)
    log_path: Path
    launch: int


class StateRecorder:
    """Writes the registry's running workers to a ``StateFile`` (see the module docstring).

    ``details`` answers, for a worker id, what the supervisor knows of its current launch
    (None: it has no process the supervisor knows of, then the worker is not written).
    """

    def __init__(
        self,
        registry: WorkerRegistry,
        state_file: StateFile,
        details: Callable[[str], LaunchDetails | None],
    ) -> None:
        self._registry = registry
        self._file = state_file
        self._details = details
        self._identities: dict[tuple[str, int], ProcessIdentity] = {}
        self._written: tuple[PersistedWorker, ...] | None = None
        self._boot_id = current_boot_id()
        self._failing = False

    def __repr__(self) -> str:
        count = None if self._written is None else len(self._written)
        return f"<StateRecorder {self._file!r} written={count}>"

    def remember(self, worker_id: str, identity: ProcessIdentity) -> None:
        """Use ``identity`` for the worker's process (read at launch or adoption) instead of
        reading it later, when the PID could already name another process."""
        self._identities[(worker_id, identity.pid)] = identity

    def snapshot(self) -> tuple[PersistedWorker, ...]:
        """The running workers as the state file should list them now."""
        found: list[PersistedWorker] = []
        live_keys: set[tuple[str, int]] = set()
        for info in self._registry.list():
            record = self._persisted(info)
            if record is not None:
                found.append(record)
                live_keys.add((info.id, record.process.pid))
        for key in set(self._identities) - live_keys:
            del self._identities[key]
        return tuple(sorted(found, key=lambda w: w.id))

    def _persisted(self, info: WorkerInfo) -> PersistedWorker | None:
        if info.state not in _RUNNING or info.pid is None or self._boot_id is None:
            return None
        details = self._details(info.id)
        if details is None:
            return None
        key = (info.id, info.pid)
        identity = self._identities.get(key)
        if identity is None:
            identity = read_identity(info.pid, boot_id=self._boot_id)
            if identity is None:
                return None  # it has just ended; the registry will say so next
            self._identities[key] = identity
        return PersistedWorker(
            id=info.id,
            model_ref=info.model_ref,
            backend=info.backend,
            device=info.device,
            engine=info.engine,
            port=info.port,
            url=info.url,
            model_path=info.model_path,
            env=details.env,
            ready=info.state in _READY,
            process=identity,
            log_path=str(details.log_path),
            callback_url=details.callback_url,
            launch=details.launch,
            restart_count=info.restart_count,
            started_at=None if info.started_at is None else info.started_at.isoformat(),
        )

    def write_if_changed(self) -> bool:
        """Write the file now if the snapshot differs from what was last written; True if it
        wrote. Blocks on the disk: for the end of the supervisor, when no task runs."""
        current = self.snapshot()
        if current == self._written:
            return False
        return self._saved(current, self._save(current))

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the registry until cancelled, writing after each burst of changes."""
        with self._registry.subscribe() as feed:
            await self._write_in_thread()
            task_status.started()
            async for item in feed:
                # A burst (ten spawns at once, a shutdown) is one write: take what is queued.
                # A lag needs nothing more: every write starts from a fresh snapshot.
                queued: object = item
                while queued is not None:
                    queued = feed.receive_nowait()
                await self._write_in_thread()

    async def _write_in_thread(self) -> None:
        # The snapshot is taken here, in the event loop's thread (the registry is not
        # thread-safe); only the file I/O (fsync) goes to a thread.
        current = self.snapshot()
        if current == self._written:
            return
        error = await anyio.to_thread.run_sync(self._save, current)
        self._saved(current, error)

    def _save(self, workers: tuple[PersistedWorker, ...]) -> OSError | None:
        try:
            self._file.save(workers)
        except OSError as err:
            return err
        return None

    def _saved(self, current: tuple[PersistedWorker, ...], error: OSError | None) -> bool:
        """Record the outcome of a write. A failed write is logged (once until one succeeds
        again) and retried at the next change: the hive keeps running, it only could not be
        adopted."""
        if error is not None:
            if not self._failing:
                log.error(
                    "cannot write the adoption state file %s (%s): if the hive is killed now, "
                    "a restarted hive will not adopt its %d running workers. Check the "
                    "state_dir's free space and permissions",
                    self._file.path,
                    error,
                    len(current),
                )
            self._failing = True
            return False
        if self._failing:
            log.info("the adoption state file %s is written again", self._file.path)
        self._failing = False
        self._written = current
        return True
