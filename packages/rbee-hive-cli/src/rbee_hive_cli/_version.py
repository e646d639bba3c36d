"""The installed version, found without importing the daemon stack (``--version`` is cheap)."""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version


def hive_version() -> str:
    """The installed rbee-hive version (the app's, else the CLI component's)."""
    for dist in ("rbee-hive", "rbee-hive-cli"):
        with contextlib.suppress(PackageNotFoundError):
            return version(dist)
    return "0+unknown"
