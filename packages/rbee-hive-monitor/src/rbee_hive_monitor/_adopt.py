"""Taking back workers that a previous hive left running (it was killed, or it crashed).

``reclaim`` sorts the state file's records: a record whose process still runs as the very same
process (PID, start time, boot, owner) is adopted through a pidfd; any other record is dropped,
and a live process that merely has the recorded PID is a stranger that is never signalled.
``AdoptedProcess`` is the handle of an adopted process: the supervisor waits for it and
signals its process group as it does for a child, but it never learns an exit status.
``adopt_survivors`` does it all when the supervisor opens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
import anyio.abc
import attrs

from rbee_hive_monitor._identity import current_boot_id, read_identity
from rbee_hive_monitor._process import WorkerProcess
from rbee_hive_monitor._settings import WorkerSpec
from rbee_hive_monitor._state_file import PersistedWorker, StateFile
from rbee_hive_monitor.exceptions import MonitorError
from rbee_hive_registry import WorkerInfo

log = logging.getLogger("rbee_hive.monitor")

_REAP_WAIT = 5.0
"""How long a SIGKILLed process left by the previous hive may take to end."""


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


@runtime_checkable
class CallbackRestorer(Protocol):
    """Callbacks (``WorkerCallbacks``) that can accept a URL an earlier hive issued."""

    def restore(self, worker_id: str, url: str) -> bool:
        """Accept ``url`` for ``worker_id`` again; False if it is not this hive's to accept."""
        ...


class Adopter(Protocol):
    """What ``adopt_survivors`` needs of the supervisor."""

    def adopt(
        self,
        spec: WorkerSpec,
        proc: WorkerProcess,
        *,
        model_path: str,
        restart_count: int = 0,
        callback_url: str | None = None,
    ) -> WorkerInfo:
        """Register ``proc`` as the running, ready worker ``spec.worker_id``."""
        ...


@attrs.frozen
class AdoptionReport:
    """What ``adopt_survivors`` did, by worker id."""

    adopted: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    """Live workers that were not adoptable (loading or stopping, or refused); stopped."""
    dropped: tuple[str, ...] = ()
    """Records without a live process of their own."""


async def adopt_survivors(
    supervisor: Adopter,
    state_file: StateFile,
    *,
    task_group: anyio.abc.TaskGroup,
    stop_grace: float,
) -> AdoptionReport:
    """Adopt the ready workers the state file lists whose processes still run; stop (in
    ``task_group``, SIGTERM then SIGKILL after ``stop_grace``) the live ones that cannot be
    adopted; drop the rest. Logs one summary line, and one line per worker not adopted."""
    loaded = state_file.load()
    if not loaded.workers:
        return AdoptionReport()
    sorted_out = reclaim(loaded.workers)
    adopted: list[str] = []
    unready = "it was loading or being stopped when the previous hive went down"
    to_stop = [(w, p, unready) for w, p in sorted_out.unfinished]
    for worker, handle in sorted_out.adopted:
        proc = WorkerProcess(
            process=handle,
            launch=worker.launch,
            port=worker.port,
            log_path=Path(worker.log_path),
            log_offset=_mark_log(worker),
            secret_urls=(worker.callback_url,) if worker.callback_url else (),
            started=anyio.current_time(),
        )
        spec = WorkerSpec(
            model_ref=worker.model_ref,
            backend=worker.backend,
            device=worker.device,
            engine=worker.engine,
            env=worker.env,
            worker_id=worker.id,
        )
        try:
            supervisor.adopt(
                spec,
                proc,
                model_path=worker.model_path,
                restart_count=worker.restart_count,
                callback_url=worker.callback_url,
            )
        except MonitorError as err:
            to_stop.append((worker, handle, f"it cannot be adopted: {err}"))
            continue
        adopted.append(worker.id)
    for worker, reason in sorted_out.dropped:
        log.info("worker %s from the state file is not adopted: %s", worker.id, reason)
    for worker, handle, reason in to_stop:
        log.warning(
            "worker %s (pid %d, port %d) outlived the previous hive but %s; stopping it",
            worker.id,
            handle.pid,
            worker.port,
            reason,
        )
        task_group.start_soon(_stop_unadopted, worker.id, handle, stop_grace)
    report = AdoptionReport(
        tuple(adopted),
        tuple(w.id for w, _, _ in to_stop),
        tuple(w.id for w, _ in sorted_out.dropped),
    )
    log.info(
        "adoption after a hive restart: adopted %d worker(s)%s, stopping %d, dropped %d "
        "record(s) of workers that no longer run",
        len(report.adopted),
        f" ({', '.join(report.adopted)})" if report.adopted else "",
        len(report.stopped),
        len(report.dropped),
    )
    return report


def _mark_log(worker: PersistedWorker) -> int:
    """Note the adoption in the worker's log; the offset of that line (0 if it cannot)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    line = (
        f"=== {stamp} adopted by a restarted hive (pid {os.getpid()}): worker pid "
        f"{worker.process.pid}, port {worker.port}\n"
    )
    try:
        fd = os.open(worker.log_path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        offset = os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line.encode())
    except OSError:
        return 0
    finally:
        os.close(fd)
    return offset


async def _stop_unadopted(worker_id: str, handle: AdoptedProcess, grace: float) -> None:
    """SIGTERM the group, SIGKILL it after ``grace``; the identity was checked through the
    pidfd, and the group is signalled only while its leader has not ended."""
    with anyio.CancelScope(shield=True):
        try:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, _REAP_WAIT)):
                if handle.has_ended():
                    break
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(handle.pid, sig)
                with anyio.move_on_after(wait):
                    await handle.wait()
            if handle.has_ended():
                log.info(
                    "worker %s (pid %d) left by the previous hive is stopped", worker_id, handle.pid
                )
            else:
                log.error(
                    "worker %s (pid %d) left by the previous hive did not end after SIGKILL; "
                    "check `ps -o pid,stat,wchan -p %d`",
                    worker_id,
                    handle.pid,
                    handle.pid,
                )
        finally:
            await handle.aclose()
