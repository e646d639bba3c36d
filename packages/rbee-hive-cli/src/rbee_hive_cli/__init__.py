"""The rbee-hive command line: ``rbee-hive daemon`` composes every room and serves the API
with hypercorn; the other commands talk to a running daemon through ``HiveClient``.

``main`` is the click entry point; ``load_settings`` / ``HiveSettings`` read flags,
``RBEE_HIVE_*`` variables, the TOML file and defaults; ``run_daemon`` runs the daemon.
"""

from rbee_hive_cli._daemon import run_daemon
from rbee_hive_cli._main import main
from rbee_hive_cli._settings import SETTINGS, Address, HiveSettings, load_settings
from rbee_hive_cli.exceptions import DaemonStartError, SettingError

__all__ = [
    "SETTINGS",
    "Address",
    "DaemonStartError",
    "HiveSettings",
    "SettingError",
    "load_settings",
    "main",
    "run_daemon",
]
