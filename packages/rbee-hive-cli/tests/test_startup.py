"""rbee-keeper runs ``rbee-hive`` over SSH: help and version must not import the daemon stack.

These are structural checks (which modules got imported), not timings; the timings are in
``scripts/bench/bench_cli_startup.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "starlette",
    "hypercorn",
    "aiohttp",
    "prometheus_client",
    "pynvml",
    "rbee_hive_monitor",
    "rbee_hive_provisioner",
    "rbee_hive_http_server",
    "rbee_hive_metrics",
    "rbee_hive_resources",
    "rbee_hive_cli._daemon",
    "rbee_hive_cli._wiring",
)

_PROBE = """
import json, sys
from rbee_hive_cli import main
try:
    main(sys.argv[1:], prog_name="rbee-hive")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def _modules_after(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    marker = done.stderr.rindex("MODULES ")
    return done.stdout, set(json.loads(done.stderr[marker + len("MODULES ") :]))


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("-V",), ("workers", "--help"), ("daemon", "--help")],
)
def test_help_and_version_do_not_import_the_daemon_stack(args: tuple[str, ...]) -> None:
    output, modules = _modules_after(*args)
    assert output.strip(), "the command printed nothing"
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)
    assert loaded == [], f"rbee-hive {' '.join(args)} imported {loaded}"


def test_version_names_the_release_without_the_daemon_stack() -> None:
    output, _ = _modules_after("--version")
    assert output.startswith("rbee-hive, version ")
    assert output.split()[-1][0].isdigit()


def test_the_lazy_public_names_still_resolve() -> None:
    import rbee_hive_cli
    from rbee_hive_cli import _daemon, _settings

    assert rbee_hive_cli.run_daemon is _daemon.run_daemon
    assert rbee_hive_cli.HiveSettings is _settings.HiveSettings
    assert rbee_hive_cli.SETTINGS is _settings.SETTINGS
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = rbee_hive_cli.nope
