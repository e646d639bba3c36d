"""Issue 5 through the daemon: /metrics that promtool accepts, /v1/devices, /v1/capacity."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hive_harness import DaemonFactory

pytestmark = pytest.mark.anyio


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: .ci/run installs the Debian package prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


async def test_a_live_scrape_with_workers_passes_promtool(start_daemon: DaemonFactory) -> None:
    tool = promtool()
    hive = start_daemon()
    for _ in range(2):
        _, body = await hive.spawn()
        await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    status, text = await hive.call("GET", "/metrics")
    assert status == 200
    assert 'rbee_hive_workers{backend="cpu",device="0",state="idle"} 2.0' in text
    assert 'rbee_hive_worker_spawns_total{outcome="ready"} 2.0' in text
    result = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, again = await hive.call("GET", "/metrics")
    gauges = [line for line in text.splitlines() if line.startswith("rbee_hive_workers{")]
    assert gauges == [line for line in again.splitlines() if line.startswith("rbee_hive_workers{")]


async def test_devices_and_capacity_answer_without_a_gpu(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    status, devices = await hive.call("GET", "/v1/devices")
    assert status == 200, devices
    assert devices["memory"]["total_bytes"] > 0
    assert devices["gpus"] == []
    assert devices["gpu_reason"]
    status, capacity = await hive.call(
        "GET", f"/v1/capacity?model_ref={hive.model_ref}&backend=cpu&device=0"
    )
    assert status == 200, capacity
    assert capacity["fits"] is True
    assert capacity["basis"] == "estimated"
    status, refused = await hive.spawn(backend="cuda")
    assert status == 422
    assert refused["error"]["code"] == "BACKEND_UNAVAILABLE"


async def test_the_measured_size_replaces_the_estimate(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    _, body = await hive.spawn()
    await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    status, capacity = await hive.call(
        "GET", f"/v1/capacity?model_ref={hive.model_ref}&backend=cpu&device=0"
    )
    assert status == 200
    assert capacity["basis"] == "measured"


async def test_a_spawn_that_cannot_fit_is_refused_with_figures(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"RBEE_HIVE_RAM_RESERVE": "100000GiB"})
    status, body = await hive.spawn()
    assert status == 409
    error = body["error"]
    assert error["code"] == "INSUFFICIENT_RAM"
    assert error["required_bytes"] > 0
    assert error["reserve_bytes"] == 100000 * 2**30
    assert "available_bytes" in error
    _, listing = await hive.call("GET", "/v1/workers/list")
    assert listing["workers"] == []
