"""Stops the hive asks for: escalation, reaping, stop_all, and closing the supervisor."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from rbee_hive_monitor import (
    EngineSpec,
    StopOutcome,
    UnknownWorker,
    WorkerConflict,
    WorkerNotReadyable,
)
from rbee_hive_registry import WorkerState
from rbee_hive_restart import Backoff

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = pytest.mark.anyio


async def test_stopped_worker_exits_gracefully_on_sigint_and_is_never_restarted(
    open_hive: OpenHive,
) -> None:
    async with open_hive(backoff=Backoff(base=0.05, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        await hive.serving(info)
        outcome = await hive.supervisor.stop(info.id)
        assert outcome is StopOutcome.GRACEFUL
        stopped = hive.registry.require(info.id)
        assert stopped.state is WorkerState.STOPPED
        assert stopped.exit_code == 0  # llm-worker-rbee exits 0 on SIGINT
        assert stopped.pid is None
        assert stopped.reason == "stopped: requested"
        hive.assert_gone(info.pid)
        assert info.id in hive.callbacks.revoked
        with anyio.move_on_after(0.3):
            await hive.wait_for(info.id, lambda w: w.state is not WorkerState.STOPPED)
            pytest.fail("a stopped worker changed state again")
        assert await hive.supervisor.stop(info.id) is StopOutcome.ALREADY_STOPPED


async def test_hung_worker_is_sigkilled_at_the_stop_timeout_and_reaped(
    open_hive: OpenHive,
) -> None:
    async with open_hive(stop_timeout=0.5) as hive:
        info = await hive.spawn_ready("hang")
        assert info.pid is not None
        began = anyio.current_time()
        outcome = await hive.supervisor.stop(info.id)
        took = anyio.current_time() - began
        assert outcome is StopOutcome.FORCED
        assert 0.5 <= took < 2.0
        stopped = hive.registry.require(info.id)
        assert stopped.state is WorkerState.STOPPED
        assert stopped.exit_code == -signal.SIGKILL
        hive.assert_gone(info.pid)


async def test_stop_all_stops_every_worker_in_parallel_within_the_deadline(
    open_hive: OpenHive,
) -> None:
    async with open_hive(stop_timeout=10.0) as hive:
        workers = [
            await hive.spawn_ready(),
            await hive.spawn_ready(),
            await hive.spawn_ready("hang"),
        ]
        provisioning = hive.supervisor.register(hive.spec())
        report = await hive.supervisor.stop_all(deadline=2.0)
        assert report.duration < 2.0
        assert (report.total, report.graceful, report.forced, report.timed_out) == (4, 2, 1, 0)
        assert report.already_stopped == 1
        assert report.outcomes[provisioning.id] is StopOutcome.ALREADY_STOPPED
        for info in workers:
            assert hive.registry.require(info.id).state is WorkerState.STOPPED
            assert info.pid is not None
            hive.assert_gone(info.pid)


async def test_stop_during_the_backoff_cancels_the_restart(open_hive: OpenHive) -> None:
    async with open_hive(backoff=Backoff(base=30.0, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        os.kill(info.pid, signal.SIGKILL)
        await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        with anyio.fail_after(1):
            outcome = await hive.supervisor.stop(info.id, "DELETE")
        assert outcome is StopOutcome.ALREADY_STOPPED
        stopped = hive.registry.require(info.id)
        assert stopped.state is WorkerState.STOPPED
        assert stopped.reason == "stopped: DELETE"
        assert len(hive.callbacks.issued) == 1


async def test_provisioning_worker_just_becomes_stopped(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        info = hive.supervisor.register(hive.spec())
        assert await hive.supervisor.stop(info.id) is StopOutcome.ALREADY_STOPPED
        assert hive.registry.require(info.id).state is WorkerState.STOPPED
        with pytest.raises(WorkerConflict):
            await hive.supervisor.start(info.id, hive.model)


async def test_refuse_new_cancels_pending_restarts(open_hive: OpenHive) -> None:
    async with open_hive(backoff=Backoff(base=30.0, jitter=0.0)) as hive:
        info = await hive.spawn_ready()
        assert info.pid is not None
        os.kill(info.pid, signal.SIGKILL)
        await hive.wait_for(info.id, lambda w: w.restart_count == 1)
        hive.supervisor.refuse_new()
        stopped = await hive.wait_state(info.id, WorkerState.STOPPED, timeout=2)
        assert stopped.reason is not None
        assert "restart cancelled" in stopped.reason


async def test_kill_all_now_kills_every_worker_and_none_is_restarted(
    open_hive: OpenHive,
) -> None:
    async with open_hive(backoff=Backoff(base=0.05, jitter=0.0)) as hive:
        workers = [await hive.spawn_ready(), await hive.spawn_ready("hang")]
        assert hive.supervisor.kill_all_now() == 2
        for info in workers:
            stopped = await hive.wait_state(info.id, WorkerState.STOPPED, timeout=2)
            assert stopped.exit_code == -signal.SIGKILL
            assert stopped.restart_count == 0
            assert info.pid is not None
            hive.assert_gone(info.pid)


async def test_leaving_the_supervisor_leaves_no_process_behind(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        workers = [await hive.spawn_ready(), await hive.spawn_ready("hang"), await hive.spawn()]
        ids = [w.id for w in workers]
        assert all(hive.processes_with(worker_id) for worker_id in ids)
    for worker_id in ids:
        assert hive.processes_with(worker_id) == []
        record = hive.registry.require(worker_id)
        assert record.state is WorkerState.STOPPED
        assert record.pid is None


async def test_forget_removes_only_terminal_workers(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        info = await hive.spawn_ready()
        with pytest.raises(WorkerConflict):
            hive.supervisor.forget(info.id)
        await hive.supervisor.stop(info.id)
        assert hive.supervisor.forget(info.id).state is WorkerState.STOPPED
        assert info.id not in hive.registry
        with pytest.raises(UnknownWorker) as caught:
            await hive.supervisor.stop(info.id)
        assert caught.value.code == "WORKER_NOT_FOUND"


async def test_ready_callback_for_unknown_or_ready_worker_is_refused(
    open_hive: OpenHive,
) -> None:
    async with open_hive() as hive:
        with pytest.raises(UnknownWorker):
            hive.supervisor.mark_ready("worker-nobody")
        info = await hive.spawn_ready()
        with pytest.raises(WorkerNotReadyable):
            hive.supervisor.mark_ready(info.id)


async def test_http_readiness_engine_with_shutdown_path_falls_back_to_its_signal(
    open_hive: OpenHive, fake_worker_argv: tuple[str, ...]
) -> None:
    # The fake worker in the real worker's "test mode" skips its callback; readiness is polled.
    engine = EngineSpec(
        name="polled",
        argv=(
            *fake_worker_argv,
            "--worker-id={worker_id}",
            "--model={model_path}",
            "--model-ref={model_ref}",
            "--backend={backend}",
            "--device={device}",
            "--port={port}",
            "--callback-url=http://localhost:9999/unused",
        ),
        readiness="http",
        ready_path="/v1/ready",
        shutdown_path="/v1/shutdown",
        graceful_signal=signal.SIGINT,
    )
    async with open_hive(engines=(engine,), ready_poll_interval=0.05) as hive:
        info = await hive.supervisor.spawn(hive.spec(engine="polled"), hive.model)
        ready = await hive.wait_state(info.id, WorkerState.IDLE)
        assert ready.engine == "polled"
        await hive.serving(ready)
        assert hive.callbacks.issued == []
        assert await hive.supervisor.stop(info.id) is StopOutcome.GRACEFUL
        assert hive.registry.require(info.id).exit_code == 0


def test_fake_worker_argv_uses_this_interpreter(fake_worker_argv: tuple[str, ...]) -> None:
    assert fake_worker_argv[0] == sys.executable
