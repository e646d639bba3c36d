"""The rbee-hive command line: ``rbee-hive daemon`` composes every room and serves the API
with hypercorn; the other commands talk to a running daemon through ``HiveClient``.

``main`` is the click entry point; ``load_settings`` / ``HiveSettings`` read flags,
``RBEE_HIVE_*`` variables, the TOML file and defaults; ``run_daemon`` runs the daemon.

Only ``main`` is imported eagerly: the console script imports this package, and
``rbee-hive --help`` must not pay for the daemon stack. The other names load on first use.
"""

import importlib as _importlib
import typing as _typing

from rbee_hive_cli._main import main
from rbee_hive_cli.exceptions import DaemonStartError, SettingError

if _typing.TYPE_CHECKING:
    from rbee_hive_cli._daemon import run_daemon
    from rbee_hive_cli._settings import SETTINGS, Address, HiveSettings, load_settings

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "SETTINGS",
    "Address",
    "DaemonStartError",
    "HiveSettings",
    "SettingError",
    "__version__",
    "load_settings",
    "main",
    "run_daemon",
]

_LAZY = {
    "SETTINGS": "rbee_hive_cli._settings",
    "Address": "rbee_hive_cli._settings",
    "HiveSettings": "rbee_hive_cli._settings",
    "load_settings": "rbee_hive_cli._settings",
    "run_daemon": "rbee_hive_cli._daemon",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rbee_hive_cli' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
