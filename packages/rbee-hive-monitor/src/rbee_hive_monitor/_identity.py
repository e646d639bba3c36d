"""Who a process is, beyond its PID: what lets a restarted hive tell its own worker from a
stranger that got the same PID after the worker died (or after a reboot).

A PID alone names a process only while it lives; the kernel hands the number out again. The
start time (field 22 of ``/proc/PID/stat``, clock ticks since boot) is fixed for a process's
life and two processes with one PID never share it, but it counts from the boot, so the boot id
(``/proc/sys/kernel/random/boot_id``) goes with it. Linux only; elsewhere nothing is known and
nothing is adopted.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

_PROC = Path("/proc")
_BOOT_ID = _PROC / "sys" / "kernel" / "random" / "boot_id"


@attrs.frozen(kw_only=True)
class ProcessIdentity:
    """A process as it was when it was recorded; equal identities mean the same process."""

    pid: int
    start_time: int
    """Clock ticks from boot to the process's start (``/proc/PID/stat`` field 22)."""
    boot_id: str
    """The boot the start time counts from."""
    pgid: int
    """Its process group; a worker leads its own, so normally ``pid``."""
    uid: int
    """The owner; the hive never adopts another user's process."""


def current_boot_id() -> str | None:
    """This boot's id, or None where the kernel does not say (not Linux)."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def read_identity(pid: int, *, boot_id: str | None = None) -> ProcessIdentity | None:
    """The identity of the live process ``pid``; None when there is none (gone, a zombie
    waiting to be reaped, or no ``/proc``). ``boot_id`` defaults to this boot's."""
    boot = boot_id or current_boot_id()
    if boot is None or pid <= 0:
        return None
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        uid = os.stat(_PROC / str(pid)).st_uid
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces and ")".
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        state, pgid, start_time = fields[0], int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None
    if state in ("Z", "X"):
        return None
    return ProcessIdentity(pid=pid, start_time=start_time, boot_id=boot, pgid=pgid, uid=uid)
