"""Errors raised by the provisioner; each says when it is raised.

Every error carries a stable ``code`` (UPPER_SNAKE, used in the HTTP error envelope and in
a download's error state) and nothing else about HTTP: the HTTP layer maps codes to statuses
in one table (``rbee_hive_http_server.ERROR_STATUS``). Messages are for a person: they name
the value, what was expected and what to do. They never contain a token.
"""

from __future__ import annotations


class ProvisionerError(Exception):
    """Base class of every error the provisioner raises."""

    code = "PROVISIONER_ERROR"


class InvalidModelRef(ProvisionerError, ValueError):
    """Raised by ``ModelRef.parse`` when the text is not one of the accepted forms."""

    code = "INVALID_MODEL_REF"


class ModelNotFound(ProvisionerError, LookupError):
    """Raised when the hub (404), the repository listing or the disk has no such model or file."""

    code = "MODEL_NOT_FOUND"


class GatedModel(ProvisionerError):
    """Raised when the hub answers 401/403: the model is gated or private, or the token is bad."""

    code = "GATED_MODEL"


class AmbiguousModel(ProvisionerError):
    """Raised when a repository has several .gguf files and the preference rule picks none."""

    code = "AMBIGUOUS_MODEL"

    def __init__(self, message: str, choices: tuple[str, ...]) -> None:
        super().__init__(message)
        self.choices = choices


class HubOffline(ProvisionerError):
    """Raised by ``start_download`` at once, without any network call, when offline mode is on
    (``HF_HUB_OFFLINE``, as huggingface_hub reads it) and the model is not in the cache.
    The request is valid, but this hive was told not to reach the hub.
    """

    code = "HUB_OFFLINE"

    def __init__(self, ref: str, cache: str) -> None:
        super().__init__(
            f"model {ref} is not in the model cache ({cache}) and offline mode is on "
            "(HF_HUB_OFFLINE), so it cannot be downloaded; put the file into that cache (for "
            "example with 'hf download' on a connected machine), name a local file as "
            "file:/abs/path.gguf, or unset HF_HUB_OFFLINE"
        )
        self.ref = ref


class InsufficientDisk(ProvisionerError):
    """Raised by disk admission before the first byte when the file would not fit.
    The request is fine; the hive lacks room for it.
    """

    code = "INSUFFICIENT_DISK"

    def __init__(self, folder: str, needed: int, free: int, reserve: int) -> None:
        super().__init__(
            f"not enough disk space in {folder}: the download needs {_gib(needed)} "
            f"but only {_gib(free)} is free and {_gib(reserve)} is kept in reserve "
            "(setting disk_reserve_bytes); free some space, remove unused models with "
            "'rbee-hive models remove', or point the cache (HF_HUB_CACHE) at a larger disk"
        )
        self.folder = folder
        self.needed = needed
        self.free = free
        self.reserve = reserve


class DownloadFailed(ProvisionerError):
    """Raised by ``Provisioner.wait``/``ensure`` when a download ended in its error state.

    ``code`` is the code of the error that ended it (``CHECKSUM_MISMATCH``,
    ``DOWNLOAD_STALLED``, ``MODEL_NOT_FOUND``, ``DOWNLOAD_CANCELLED``, ...), or
    ``DOWNLOAD_FAILED`` for network and file-system failures that outlived every retry.
    """

    code = "DOWNLOAD_FAILED"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ChecksumMismatch(DownloadFailed):
    """Raised for an attempt whose bytes do not hash to the SHA-256 the hub announced."""

    code = "CHECKSUM_MISMATCH"


class DownloadStalled(DownloadFailed):
    """Raised for an attempt that received no byte for ``stall_timeout`` seconds."""

    code = "DOWNLOAD_STALLED"


class DownloadCancelled(DownloadFailed):
    """The state a download ends in when the provisioner closes before it finished.

    The partial ``.incomplete`` file is kept, and the next download of the file resumes it.
    """

    code = "DOWNLOAD_CANCELLED"


class UnknownDownload(ProvisionerError, LookupError):
    """Raised when a download id was never issued, or its final state is no longer retained."""

    code = "UNKNOWN_DOWNLOAD"

    def __init__(self, download_id: str, retention: float) -> None:
        super().__init__(
            f"no download with id {download_id!r}: it was never started here, or it ended "
            f"more than {retention:g} s ago (setting progress_retention); "
            "start the download again, which answers at once if the model is cached"
        )
        self.download_id = download_id


class ModelNotInCatalog(ProvisionerError, LookupError):
    """Raised by ``remove``/``verify`` when the catalog has no model for the reference."""

    code = "MODEL_NOT_IN_CATALOG"

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"model {ref} is not in the catalog; 'rbee-hive models list' shows the "
            "references it has"
        )
        self.ref = ref


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
