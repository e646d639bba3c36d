"""Graceful shutdown for rbee-hive: SIGTERM or SIGINT drains (no new spawns, every worker
stopped in parallel under one deadline, downloads and audit log closed, a report), and a
second signal kills every worker's process group at once.

``GracefulShutdown`` carries it out; ``ShutdownReport`` says how it went.
"""

from rbee_hive_shutdown._shutdown import (
    DUPLICATE_WINDOW,
    SIGNALS,
    GracefulShutdown,
    ShutdownReport,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = ["DUPLICATE_WINDOW", "SIGNALS", "GracefulShutdown", "ShutdownReport", "__version__"]
