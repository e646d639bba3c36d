"""Taking back workers that a previous hive left running (it was killed, or it crashed).

``reclaim`` sorts the state file's records: a record whose process still runs as the very same
process (PID, start time, boot, owner) is adopted through a pidfd; any other record is dropped,
and a live process that merely has the recorded PID is a stranger that is never signalled.
``AdoptedProcess`` is the handle of an adopted process: the supervisor waits for it and
signals its process group as it does for a child, but it never learns an exit status.
"""

from __future__ import annotations

import contextlib
import os
import select

import anyio
import attrs

from rbee_hive_monitor._identity import current_boot_id, read_identity
from rbee_hive_monitor._state_file import PersistedWorker


class AdoptedProcess:
    """A worker process this hive did not start, watched through a pidfd.

    Satisfies ``_process.OsProcess``, so a ``WorkerProcess`` wraps it as it wraps a child:
    ``wait`` returns when the process ends (the pidfd becomes readable, which works for a
    process that is not our child) and always returns None; the exit status goes to whoever
    reaps it (init, or a subreaper), not to us.
    """

    def __init__(self, pid: int, pidfd: int) -> None:
        """Use ``adopt_process``; the handle owns ``pidfd`` from now on."""
        self._pid = pid
        self._pidfd: int | None = pidfd
        self._ended = anyio.Event()
        self._waiting = False

    def __repr__(self) -> str:
        return f"<AdoptedProcess pid={self._pid} ended={self._ended.is_set()}>"

    @property
    def pid(self) -> int:
        """The process id (and process group id)."""
        return self._pid

    @property
    def returncode(self) -> int | None:
        """Always None: an adopted process's exit status is not ours to collect."""
        return None

    def has_ended(self) -> bool:
        """Whether the process has ended, without waiting."""
        if not self._ended.is_set() and self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            if poller.poll(0):
                self._ended.set()
        return self._ended.is_set() or self._pidfd is None

    async def wait(self) -> None:
        """Wait until the process has ended; returns None (no exit status)."""
        if self._waiting or self._pidfd is None:
            # One task waits on the pidfd; any other waits for what it finds.
            if self._pidfd is not None:
                await self._ended.wait()
            return
        self._waiting = True
        try:
            if not self.has_ended():
                await anyio.wait_readable(self._pidfd)
            self._ended.set()
        finally:
            self._waiting = False

    async def aclose(self) -> None:
        """Close the pidfd; a waiter still waiting wakes up."""
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                anyio.notify_closing(fd)
            os.close(fd)
            self._ended.set()


def adopt_process(worker: PersistedWorker, *, boot_id: str | None = None) -> AdoptedProcess | str:
    """A handle on the worker's recorded process if it still runs as that same process; else
    why not (a phrase for the log). Opens the pidfd first and checks the identity after, so the
    handle can never point at a process that took the PID over in between."""
    recorded = worker.process
    boot = boot_id or current_boot_id()
    if boot is None:
        return "this system has no boot id (/proc), so no process can be told apart from another"
    if recorded.boot_id != boot:
        return "it was recorded before the machine rebooted"
    try:
        pidfd = os.pidfd_open(recorded.pid)
    except ProcessLookupError:
        return f"its process (pid {recorded.pid}) has ended"
    except OSError as err:
        return f"its process (pid {recorded.pid}) cannot be watched: {err.strerror}"
    found = read_identity(recorded.pid, boot_id=boot)
    if found is None:
        os.close(pidfd)
        return f"its process (pid {recorded.pid}) has ended"
    if found != recorded:
        os.close(pidfd)
        return (
            f"pid {recorded.pid} now belongs to another process (started at tick "
            f"{found.start_time}, not {recorded.start_time}; group {found.pgid}, owner uid "
            f"{found.uid}); it is left alone"
        )
    return AdoptedProcess(recorded.pid, pidfd)


@attrs.frozen
class Reclaimed:
    """How ``reclaim`` sorted the records."""

    adopted: tuple[tuple[PersistedWorker, AdoptedProcess], ...] = ()
    """Ready workers whose process still runs: take them back."""
    unfinished: tuple[tuple[PersistedWorker, AdoptedProcess], ...] = ()
    """Live processes of workers that were loading or stopping: stop them (no orphans)."""
    dropped: tuple[tuple[PersistedWorker, str], ...] = ()
    """Records without a live process of their own, and why."""


def reclaim(
    workers: tuple[PersistedWorker, ...] | list[PersistedWorker],
    *,
    boot_id: str | None = None,
) -> Reclaimed:
    """Sort the state file's ``workers``; see ``Reclaimed``. Each adopted worker keeps the
    port it serves on, even one outside a port range that was changed meanwhile."""
    boot = boot_id or current_boot_id()
    adopted: list[tuple[PersistedWorker, AdoptedProcess]] = []
    unfinished: list[tuple[PersistedWorker, AdoptedProcess]] = []
    dropped: list[tuple[PersistedWorker, str]] = []
    seen_ids: set[str] = set()
    seen_ports: set[int] = set()
    for worker in workers:
        if worker.id in seen_ids or worker.port in seen_ports:
            dropped.append((worker, "another record has the same id or port"))
            continue
        found = adopt_process(worker, boot_id=boot)
        if isinstance(found, str):
            dropped.append((worker, found))
            continue
        seen_ids.add(worker.id)
        seen_ports.add(worker.port)
        (adopted if worker.ready else unfinished).append((worker, found))
    return Reclaimed(tuple(adopted), tuple(unfinished), tuple(dropped))
