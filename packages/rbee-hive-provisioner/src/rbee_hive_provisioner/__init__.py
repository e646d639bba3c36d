"""Models for rbee-hive: references, the Hugging Face cache, downloads and the catalog.

Open a ``Provisioner`` with ``ProvisionerSettings``; parse input with ``ModelRef.parse``;
``start_download``/``subscribe``/``wait``/``ensure`` fetch models, ``list_models``/
``remove``/``verify`` manage the catalog. ``to_wire`` gives progress events their JSON shape.
``hf_hub_cache``/``hf_home``/``hf_hub_offline``/``hf_token_path`` are huggingface_hub's
environment rules.
"""

from rbee_hive_provisioner._cache import CachedFile, RepoCache, scan_cache
from rbee_hive_provisioner._catalog import MIGRATIONS, Catalog, CatalogEntry
from rbee_hive_provisioner._choice import DEFAULT_QUANTIZATION_PREFERENCE, choose_gguf
from rbee_hive_provisioner._disk import DiskAdmission, FreeSpaceAdmission
from rbee_hive_provisioner._events import (
    DownloadComplete,
    DownloadError,
    DownloadEvent,
    DownloadProgress,
    is_final,
)
from rbee_hive_provisioner._provisioner import Provisioner
from rbee_hive_provisioner._ref import ACCEPTED_FORMS, ModelRef
from rbee_hive_provisioner._results import (
    CACHED_DOWNLOAD_ID,
    DownloadTicket,
    LocalModel,
    ProvisionerStats,
    VerifyResult,
)
from rbee_hive_provisioner._settings import (
    ProvisionerSettings,
    hf_home,
    hf_hub_cache,
    hf_hub_offline,
    hf_token_path,
)
from rbee_hive_provisioner._tracker import DownloadStatus, DownloadTracker, ProgressSubscription
from rbee_hive_provisioner._wire import to_wire
from rbee_hive_provisioner.exceptions import (
    AmbiguousModel,
    ChecksumMismatch,
    DownloadCancelled,
    DownloadFailed,
    DownloadStalled,
    GatedModel,
    HubOffline,
    InsufficientDisk,
    InvalidModelRef,
    ModelNotFound,
    ModelNotInCatalog,
    ProvisionerError,
    UnknownDownload,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "ACCEPTED_FORMS",
    "CACHED_DOWNLOAD_ID",
    "DEFAULT_QUANTIZATION_PREFERENCE",
    "MIGRATIONS",
    "AmbiguousModel",
    "CachedFile",
    "Catalog",
    "CatalogEntry",
    "ChecksumMismatch",
    "DiskAdmission",
    "DownloadCancelled",
    "DownloadComplete",
    "DownloadError",
    "DownloadEvent",
    "DownloadFailed",
    "DownloadProgress",
    "DownloadStalled",
    "DownloadStatus",
    "DownloadTicket",
    "DownloadTracker",
    "FreeSpaceAdmission",
    "GatedModel",
    "HubOffline",
    "InsufficientDisk",
    "InvalidModelRef",
    "LocalModel",
    "ModelNotFound",
    "ModelNotInCatalog",
    "ModelRef",
    "ProgressSubscription",
    "Provisioner",
    "ProvisionerError",
    "ProvisionerSettings",
    "ProvisionerStats",
    "RepoCache",
    "UnknownDownload",
    "VerifyResult",
    "__version__",
    "choose_gguf",
    "hf_home",
    "hf_hub_cache",
    "hf_hub_offline",
    "hf_token_path",
    "is_final",
    "scan_cache",
    "to_wire",
]
