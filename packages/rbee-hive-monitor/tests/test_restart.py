"""Exits nobody asked for: detection, restarts with backoff, the breaker, probes, timeouts."""

from __future__ import annotations

import os
import signal
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from rbee_hive_monitor import HttpAnswer, WorkerNotReadyable
from rbee_hive_registry import WorkerState
from rbee_hive_restart import Backoff, BreakerSettings

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = pytest.mark.anyio


async def test_killed_worker_is_seen_at_once_and_restarted_with_a_new_pid(
    open_hive: OpenHive,
) -> None:
    async with open_hive(backoff=Backoff(base=0.3, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        killed_at = anyio.current_time()
        os.kill(info.pid, signal.SIGKILL)
        crashed = await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        assert anyio.current_time() - killed_at < 0.5  # seen at once, not at a probe
        assert crashed.state is WorkerState.LOADING
        assert crashed.pid is None
        assert crashed.exit_code == -signal.SIGKILL
        assert crashed.reason == "was killed by SIGKILL; restart 1 in 0.3 s"
        assert crashed.last_restart is not None
        again = await hive.wait_for(info.id, lambda w: w.state is WorkerState.IDLE)
        assert anyio.current_time() - killed_at >= 0.3
        assert again.pid is not None
        assert again.pid != info.pid
        assert again.restart_count == 1
        hive.assert_gone(info.pid)


async def test_crash_loop_opens_the_breaker_and_the_worker_stays_failed(
    open_hive: OpenHive,
) -> None:
    async with open_hive(
        early_exit_grace=0.0, breaker=BreakerSettings(threshold=3, window=60.0)
    ) as hive:
        info = await hive.spawn("crash_after", crash_after_s="0.05")
        failed = await hive.wait_state(info.id, WorkerState.FAILED)
        assert failed.restart_count == 2
        assert failed.exit_code == 1
        assert failed.reason is not None
        assert "crash loop: 3 exits within 60 s" in failed.reason
        assert "the breaker would close in" in failed.reason
        assert failed.pid is None
        assert hive.processes_with(info.id) == []
        assert info.id in hive.callbacks.revoked


async def test_failing_health_checks_kill_the_worker_and_it_is_restarted(
    open_hive: OpenHive,
) -> None:
    async with open_hive(probe_interval=0.1, probe_failure_threshold=2) as hive:
        info = await hive.spawn_ready("unhealthy")
        failing = await hive.wait_for(info.id, lambda w: w.failed_health_checks == 1)
        assert failing.state is WorkerState.IDLE
        restarted = await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        assert restarted.reason is not None
        assert restarted.reason.startswith("killed after 2 failed health checks")
        assert "HTTP 500" in restarted.reason
        assert restarted.failed_health_checks == 0
        assert info.pid is not None
        hive.assert_gone(info.pid)


async def test_stale_heartbeats_count_as_failed_probes(open_hive: OpenHive) -> None:
    async with open_hive(
        probe_interval=0.2, probe_failure_threshold=2, heartbeat_stale_after=1.0
    ) as hive:
        info = await hive.spawn_ready(heartbeat_s="0.1")
        beating = await hive.wait_for(info.id, lambda w: w.last_heartbeat is not None)
        assert beating.state is WorkerState.IDLE
        hive.callbacks.refuse_heartbeats = True
        restarted = await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        assert restarted.reason is not None
        assert "last heartbeat" in restarted.reason


async def test_worker_that_never_becomes_ready_fails_at_the_loading_timeout(
    open_hive: OpenHive,
) -> None:
    async with open_hive(loading_timeout=0.6) as hive:
        info = await hive.spawn("no_callback")
        failed = await hive.wait_state(info.id, WorkerState.FAILED)
        assert failed.restart_count == 0
        assert failed.reason is not None
        assert "loading_timeout" in failed.reason
        assert info.pid is not None
        hive.assert_gone(info.pid)


async def test_stale_ready_callback_after_a_crash_is_rejected(open_hive: OpenHive) -> None:
    async with open_hive(backoff=Backoff(base=0.5, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        os.kill(info.pid, signal.SIGKILL)
        await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        with pytest.raises(WorkerNotReadyable) as caught:
            hive.supervisor.mark_ready(info.id)
        assert caught.value.code == "WORKER_NOT_LOADING"
        assert hive.registry.require(info.id).state is WorkerState.LOADING
        again = await hive.wait_state(info.id, WorkerState.IDLE)
        # Each launch got its own callback secret; the first one is useless now.
        assert len(hive.callbacks.issued) == 2
        assert hive.callbacks.issued[0] != hive.callbacks.issued[1]
        with pytest.raises(WorkerNotReadyable):
            hive.supervisor.mark_ready(info.id, port=again.port + 1)


async def test_restart_moves_to_a_new_port_when_the_old_one_was_taken(
    open_hive: OpenHive,
) -> None:
    async with open_hive(backoff=Backoff(base=0.3, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(info.pid, signal.SIGKILL)
            await hive.wait_for(info.id, lambda w: w.restart_count == 1)
            squatter.bind(("0.0.0.0", info.port))
            squatter.listen()
            again = await hive.wait_for(info.id, lambda w: w.state is WorkerState.IDLE)
        assert again.port != info.port
        assert again.url == f"http://127.0.0.1:{again.port}"


class GatedHttp:
    """A ``WorkerHttp`` whose health answers wait for a gate, then say HTTP 500."""

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.in_flight = anyio.Event()

    async def get(self, url: str, within: float) -> HttpAnswer:
        self.in_flight.set()
        await self.gate.wait()
        return HttpAnswer(500)

    async def post(self, url: str, within: float) -> HttpAnswer:
        return HttpAnswer(None, "not used")


async def test_probe_answer_never_reverts_a_newer_state(
    open_hive: OpenHive,
) -> None:
    http = GatedHttp()
    async with open_hive(probe_interval=0.05, probe_failure_threshold=5, http=http) as hive:
        info = await hive.spawn_ready()
        with anyio.fail_after(5):
            await http.in_flight.wait()  # a probe of the IDLE worker is under way
        hive.supervisor.mark_busy(info.id)
        http.gate.set()
        counted = await hive.wait_for(info.id, lambda w: w.failed_health_checks == 1)
        assert counted.state is WorkerState.BUSY
