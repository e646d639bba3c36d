"""Issue 10.2 through the daemon: the counters an operator scrapes follow the lifecycle
events, including launches that fail before a worker could be registered for long."""

from __future__ import annotations

import re

import anyio
import pytest

from hive_harness import Daemon, DaemonFactory

pytestmark = pytest.mark.anyio


async def counter(hive: Daemon, name: str) -> float:
    status, text = await hive.call("GET", "/metrics")
    assert status == 200
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} is not in the scrape"
    return float(match.group(1))


async def test_an_early_exit_counts_as_a_failed_spawn(start_daemon: DaemonFactory) -> None:
    hive = start_daemon({"FAKE_WORKER_MODE": "exit_now"})
    status, body = await hive.spawn()
    assert status == 502, body
    assert body["error"]["code"] == "WORKER_EXITED_EARLY"
    with anyio.fail_after(5):
        while await counter(hive, 'rbee_hive_worker_spawns_total{outcome="failed"}') < 1:
            await anyio.sleep(0.1)
    assert await counter(hive, "rbee_hive_worker_crashes_total") == 0


async def test_a_crash_loop_counts_its_crashes_restarts_and_one_breaker_opening(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon(
        {
            "FAKE_WORKER_MODE": "crash_after",
            "FAKE_WORKER_CRASH_AFTER_S": "0.05",
            "RBEE_HIVE_BREAKER_THRESHOLD": "3",
        }
    )
    _, body = await hive.spawn()
    await hive.wait_for(
        body["worker_id"], lambda w: w["state"] == "failed", timeout=30, what="failed"
    )
    with anyio.fail_after(5):
        while await counter(hive, "rbee_hive_crash_loop_breaker_openings_total") < 1:
            await anyio.sleep(0.1)
    assert await counter(hive, "rbee_hive_worker_crashes_total") == 3
    assert await counter(hive, "rbee_hive_worker_restarts_total") == 2
    assert await counter(hive, "rbee_hive_crash_loop_breaker_openings_total") == 1
    assert await counter(hive, 'rbee_hive_worker_spawns_total{outcome="ready"}') == 1
