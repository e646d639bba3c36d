"""What the supervisor needs of one worker process: a child it launched, or (after a hive
restart) a process it adopted. ``_process.WorkerProcess`` is the child's implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import anyio


class ProcessHandle(Protocol):
    """One process of a worker, leading its own process group.

    ``watch`` runs for as long as the process does: it awaits the exit, records
    ``returncode`` (None when it cannot be known, e.g. for a process that is not our child),
    sets ``exited`` and clears out the rest of the group.
    """

    port: int
    started: float
    """anyio time of the launch (or of the adoption)."""
    log_path: Path
    exited: anyio.Event
    returncode: int | None
    graceful_signal_sent: bool
    sigkill_sent: bool

    @property
    def pid(self) -> int:
        """The process id (also the process group id)."""
        ...

    @property
    def running(self) -> bool:
        """True until the exit has been seen."""
        ...

    async def watch(self) -> None:
        """Await the exit; see the class docstring."""
        ...

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the process group; False if nothing was left to signal."""
        ...

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines this launch wrote, secrets masked."""
        ...
