"""Progress events of a download: frozen values, one per state (no wire format here)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs


@attrs.frozen
class DownloadProgress:
    """Bytes are arriving. ``speed_mbps`` is megabits (10^6 bit) per second over the last
    few seconds; ``bytes_total`` and ``eta_seconds`` are None when the hub announced no size."""

    bytes_downloaded: int
    bytes_total: int | None
    speed_mbps: float
    eta_seconds: float | None

    stage: ClassVar[str] = "downloading"


@attrs.frozen
class DownloadComplete:
    """The file is verified, in the cache and in the catalog; ``local_path`` is what to load."""

    local_path: Path

    stage: ClassVar[str] = "complete"


@attrs.frozen
class DownloadError:
    """The download ended without a file; ``code`` is a ``ProvisionerError`` code."""

    code: str
    message: str

    stage: ClassVar[str] = "error"


DownloadEvent = DownloadProgress | DownloadComplete | DownloadError
"""Any state a download can be in; the last two are final."""


def is_final(event: DownloadEvent) -> bool:
    """Whether nothing follows this event."""
    return not isinstance(event, DownloadProgress)
