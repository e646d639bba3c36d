"""One launch of a worker: the OS process, its process group, its log file, its exit."""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
import attrs

HIDDEN_ENV = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
"""Hive variables a worker never inherits: the model hub token is the hive's, not theirs."""

_TAIL_BYTES = 64 * 1024

# Runs in the new process between fork and the worker's exec (anyio has no preexec_fn, and a
# preexec_fn would run Python in a forked copy of a threaded daemon anyway). It asks the kernel
# for argv[2] when the parent dies, then execs the worker; PDEATHSIG survives execve (only a
# set-user-ID program clears it). If the parent already died before prctl, it stops at once.
_DEATHSIG_TRAMPOLINE = """\
import ctypes, os, sys
parent, sig, program = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, sig, 0, 0, 0) != 0:
    sys.stderr.write("=== prctl(PR_SET_PDEATHSIG) failed: %s\\n" % os.strerror(ctypes.get_errno()))
    os._exit(126)
if os.getppid() != parent:
    os._exit(125)
try:
    os.execv(program, sys.argv[4:])
except OSError as err:
    sys.stderr.write("=== exec %s failed: %s\\n" % (program, err))
    os._exit(127)
"""


class OsProcess(Protocol):
    """What ``WorkerProcess`` needs of the OS process under it: a child it started (anyio's
    ``Process``) or a process adopted after a hive restart (``_adopt.AdoptedProcess``)."""

    @property
    def pid(self) -> int:
        """The process id; the worker leads its own session, so it is the group id too."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit status once known; always None for a process that is not our child."""
        ...

    async def wait(self) -> int | None:
        """Wait for the exit; the exit status, or None when it cannot be known."""
        ...

    async def aclose(self) -> None:
        """Release what the handle holds (pipes, a pidfd)."""
        ...


class ProgramNotStarted(Exception):
    """The OS refused to start the program; ``error`` is its ``OSError``."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def mask_url(url: str) -> str:
    """``url`` with everything after the host and port masked (it may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/***"


def redact(text: str, secret_urls: Iterable[str]) -> str:
    """``text`` with each secret URL (and its path alone) replaced by its masked form."""
    for url in secret_urls:
        parts = urlsplit(url)
        masked = mask_url(url)
        text = text.replace(url, masked)
        tail = url[len(f"{parts.scheme}://{parts.netloc}") :]
        if len(tail) > 1:
            text = text.replace(tail, "/***")
    return text


def worker_env(*extra: Mapping[str, str]) -> dict[str, str]:
    """The hive's environment without ``HIDDEN_ENV``, then each of ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    for more in extra:
        env.update(more)
    return env


def describe_exit(code: int | None) -> str:
    """``exited with code 1`` / ``was killed by SIGKILL`` / ``ended (status unknown)``."""
    if code is None:
        return "ended (status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


@attrs.define(eq=False)
class WorkerProcess:
    """A launched worker process and what the supervisor did to it.

    The process leads its own process group (``start_new_session``), so signals go to the
    group and reach whatever the worker started. ``watch`` awaits the exit (the event loop's
    child watcher reaps it); ``exited`` is set as soon as that happens.
    """

    process: OsProcess
    launch: int
    """1 for the first launch of this worker, 2 for the first restart, ..."""
    port: int
    log_path: Path
    log_offset: int
    """Where this launch's header starts in the log file."""
    secret_urls: tuple[str, ...]
    started: float
    """anyio time of the launch."""
    exited: anyio.Event = attrs.field(factory=anyio.Event)
    ready: anyio.Event = attrs.field(factory=anyio.Event)
    settled: anyio.Event = attrs.field(factory=anyio.Event)
    """Set when the launch became ready or exited, whichever came first."""
    returncode: int | None = None
    graceful_signal_sent: bool = False
    sigkill_sent: bool = False
    kill_reason: str | None = None
    """Why the supervisor killed it, if it did (probes, loading timeout)."""
    failed_loading: bool = False
    """Killed because it was not ready within the loading timeout: not to be restarted."""

    def __repr__(self) -> str:
        return (
            f"<WorkerProcess pid={self.pid} launch={self.launch} port={self.port} "
            f"returncode={self.returncode}>"
        )

    @property
    def pid(self) -> int:
        """The process id (also the process group id)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True until the exit has been seen."""
        return not self.exited.is_set()

    async def watch(self) -> None:
        """Wait for the exit, record it, then clear out the rest of the process group."""
        code = await self.process.wait()
        self.returncode = code
        self.exited.set()
        self.settled.set()
        # The leader is gone; anything it left in its group must not outlive it.
        self.signal_group(signal.SIGKILL)
        await self.process.aclose()

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole process group; False if nothing was left to signal."""
        if sig == signal.SIGKILL and self.running:
            self.sigkill_sent = True
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            # The group id was recycled by a process we may not signal: ours is gone.
            return False
        return True

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines this launch wrote, with secrets masked."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self.log_offset, size - _TAIL_BYTES))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        kept = [line for line in text.splitlines() if not line.startswith("=== ")]
        return [redact(line, self.secret_urls) for line in kept[-lines:]]


async def launch_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    header: str,
    secret_urls: tuple[str, ...],
    parent_death_signal: int | None = None,
) -> tuple[anyio.abc.Process, int]:
    """Start ``argv`` in its own session with stdout and stderr appended to ``log_path``.

    Writes a header line (``header`` and the argv, secrets masked) first; returns the process
    and the offset of the header. Raises ``ProgramNotStarted`` when the OS refuses to run the
    program (a line saying so goes to the log too), ``OSError`` when the log cannot be opened.

    With ``parent_death_signal`` (Linux), the kernel sends that signal to the worker when the
    thread that started it dies: call this from the event loop's thread, which lives as long
    as the hive (the daemon runs its loop in the main thread), never from a worker thread.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        offset = os.lseek(fd, 0, os.SEEK_END)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        line = f"=== {stamp} {header}: {redact(shlex.join(argv), secret_urls)}\n"
        os.write(fd, line.encode("utf-8", errors="replace"))
        command = argv
        try:
            if parent_death_signal is not None:
                command = _with_death_signal(argv, env, parent_death_signal)
            process = await anyio.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as err:
            os.write(fd, f"=== launch failed: {type(err).__name__}: {err}\n".encode())
            raise ProgramNotStarted(err) from err
    finally:
        os.close(fd)
    return process, offset


def _with_death_signal(argv: list[str], env: Mapping[str, str], sig: int) -> list[str]:
    """``argv`` run through the PDEATHSIG trampoline. The program is resolved here, as exec
    would resolve it, so a missing or non-executable program is the usual ``OSError``."""
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        program = found
    elif not os.path.isfile(program):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    elif not os.access(program, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    trampoline = [sys.executable, "-I", "-S", "-c", _DEATHSIG_TRAMPOLINE]
    return [*trampoline, str(os.getpid()), str(sig), program, *argv]
