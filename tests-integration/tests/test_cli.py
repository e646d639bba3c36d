"""The CLI against a live daemon, in both spellings (ours and rbee-keeper's)."""

from __future__ import annotations

import json
import subprocess

import pytest

from hive_harness import RBEE_HIVE, Daemon, DaemonFactory

pytestmark = pytest.mark.anyio


def cli(hive: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RBEE_HIVE), *args, "--addr", f"127.0.0.1:{hive.port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_workers_spawn_list_show_stop(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    spawned = cli(hive, "workers", "spawn", hive.model_ref, "--json")
    assert spawned.returncode == 0, spawned.stderr
    worker_id = json.loads(spawned.stdout)["worker_id"]
    await hive.wait_for(worker_id, lambda w: w["state"] == "idle", what="idle")
    listed = cli(hive, "workers", "list")
    assert listed.returncode == 0
    assert worker_id in listed.stdout
    assert "idle" in listed.stdout
    shown = json.loads(cli(hive, "workers", "show", worker_id, "--json").stdout)
    assert shown["id"] == worker_id
    stopped = cli(hive, "workers", "stop", worker_id)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert json.loads(cli(hive, "workers", "list", "--json").stdout) == {"workers": []}


async def test_rbee_keepers_spelling_still_works(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    spawned = cli(hive, "worker", "spawn", "cpu", "--model", hive.model_ref, "--gpu", "0")
    assert spawned.returncode == 0, spawned.stderr
    worker_id = spawned.stdout.split()[1]
    assert worker_id in cli(hive, "worker", "list").stdout
    assert cli(hive, "worker", "stop", worker_id).returncode == 0
    status = cli(hive, "status")
    assert status.returncode == 0, status.stderr
    assert "alive" in status.stdout


async def test_errors_name_the_daemon_and_the_problem(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    result = cli(hive, "workers", "spawn", "not-a-ref")
    assert result.returncode != 0
    assert f"127.0.0.1:{hive.port}" in result.stderr
    assert "INVALID_MODEL_REF" in result.stderr
