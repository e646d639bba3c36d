"""What the provisioner's operations return: frozen values."""

from __future__ import annotations

from pathlib import Path

import attrs

from rbee_hive_provisioner._ref import ModelRef

CACHED_DOWNLOAD_ID = "cached"
"""The ``download_id`` of a ticket whose model was already there (as the original hive)."""


@attrs.frozen
class LocalModel:
    """A model file on this machine, ready to load.

    ``ref`` names the file (a file-less ``hf:ORG/REPO`` comes back with the chosen file);
    ``sha256`` is None for ``file:`` models and for files the hub gave no SHA-256 for.
    """

    ref: ModelRef
    path: Path
    size: int
    sha256: str | None


@attrs.frozen
class DownloadTicket:
    """The answer to ``start_download``.

    ``cached`` set: the model is already here, nothing was started and ``download_id`` is
    ``"cached"``. Otherwise ``download_id`` names a running download (the same one for every
    request of the same file) to ``subscribe`` to or ``wait`` for.
    """

    download_id: str
    cached: LocalModel | None = None


@attrs.frozen
class VerifyResult:
    """The outcome of re-hashing a catalogued model against its recorded SHA-256.

    ``ok`` is True when the file exists and its hash matches (or no hash was recorded, in
    which case only its presence was checked); ``problem`` says what is wrong otherwise.
    """

    reference: str
    path: Path
    expected_sha256: str | None
    actual_sha256: str | None
    ok: bool
    problem: str | None = None


@attrs.frozen
class ProvisionerStats:
    """Counters for metrics, read at scrape time (counts since the provisioner opened)."""

    downloads_completed: int
    downloads_failed: int
    downloads_cancelled: int
    bytes_downloaded: int
    active_downloads: int
    catalog_models: int
    catalog_bytes: int
