"""Disk admission: refuse a download before its first byte when it would not fit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

import attrs

from rbee_hive_provisioner.exceptions import InsufficientDisk


class DiskAdmission(Protocol):
    """Decides whether ``needed_bytes`` more may be written under ``folder``.

    Returns when they fit; raises ``InsufficientDisk`` (with needed, free and reserve) when
    they do not. Called once per download, before the first byte is written.
    """

    def __call__(self, folder: Path, needed_bytes: int) -> None: ...


@attrs.frozen
class FreeSpaceAdmission:
    """The default admission: ``shutil.disk_usage`` free space minus a fixed reserve."""

    reserve_bytes: int

    def __call__(self, folder: Path, needed_bytes: int) -> None:
        """Raise ``InsufficientDisk`` unless free - needed stays above the reserve."""
        free = shutil.disk_usage(folder).free
        if free - needed_bytes < self.reserve_bytes:
            raise InsufficientDisk(str(folder), needed_bytes, free, self.reserve_bytes)
