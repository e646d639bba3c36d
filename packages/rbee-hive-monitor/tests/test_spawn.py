"""Spawning workers: ports, the launch, readiness, and launches that fail."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from rbee_hive_monitor import LaunchFailed, SupervisorClosed, WorkerSpec, rbee_engine
from rbee_hive_registry import WorkerState

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = pytest.mark.anyio


async def test_spawned_worker_calls_back_and_becomes_idle(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        info = await hive.spawn()
        assert info.id.startswith("worker-")
        assert info.state in (WorkerState.LOADING, WorkerState.IDLE)
        assert info.pid is not None
        assert info.url == f"http://127.0.0.1:{info.port}"
        ready = await hive.wait_state(info.id, WorkerState.IDLE)
        assert ready.pid == info.pid
        assert hive.callbacks.authorization_seen is False
        assert b'"url": "http://localhost:%d"' % info.port in hive.callbacks.ready_bodies[0]


async def test_worker_log_has_a_header_per_launch_without_the_callback_secret(
    open_hive: OpenHive,
) -> None:
    async with open_hive() as hive:
        info = await hive.spawn_ready()
        log = hive.supervisor.log_path(info.id).read_text()
        secret_url = hive.callbacks.issued[0]
        assert secret_url not in log
        assert secret_url.rsplit("/", 1)[1] not in log
        assert "--callback-url http://127.0.0.1:" in log
        assert log.startswith("=== ")
        assert f"launch 1 of {info.id}" in log


async def test_worker_environment_lacks_hf_token_and_has_spec_env(
    open_hive: OpenHive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("RBEE_TEST_INHERITED", "yes")
    async with open_hive() as hive:
        spec = WorkerSpec(
            model_ref="hf:a/b", env={"CUDA_VISIBLE_DEVICES": "3", "FAKE_WORKER_MODE": "normal"}
        )
        info = await hive.supervisor.spawn(spec, hive.model)
        assert info.pid is not None
        environ = Path(f"/proc/{info.pid}/environ").read_bytes().split(b"\0")
        assert b"CUDA_VISIBLE_DEVICES=3" in environ
        assert b"RBEE_TEST_INHERITED=yes" in environ
        assert not any(e.startswith(b"HF_TOKEN=") for e in environ)


async def test_ten_concurrent_spawns_get_ten_distinct_ports(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        infos = []

        async def one() -> None:
            infos.append(await hive.spawn())

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        ports = {i.port for i in infos}
        assert len(ports) == 10
        first, last = hive.supervisor.settings.port_range
        assert all(first <= p <= last for p in ports)
        for info in infos:
            await hive.wait_state(info.id, WorkerState.IDLE)


async def test_port_held_by_another_process_is_skipped(open_hive: OpenHive) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        held = squatter.getsockname()[1]
        async with open_hive(port_range=(held, held + 50)) as hive:
            info = hive.supervisor.register(hive.spec())
            assert info.state is WorkerState.PROVISIONING
            assert held < info.port <= held + 50


async def test_missing_program_fails_fast_and_leaves_nothing(
    open_hive: OpenHive, tmp_path: Path
) -> None:
    missing = rbee_engine(tmp_path / "no-such-worker", name="missing")
    async with open_hive(engines=(missing,)) as hive:
        with anyio.fail_after(2), pytest.raises(LaunchFailed) as caught:
            await hive.supervisor.spawn(hive.spec(engine="missing"), hive.model)
        assert caught.value.code == "WORKER_BINARY_NOT_FOUND"
        assert "no-such-worker" in str(caught.value)
        assert len(hive.registry) == 0


async def test_worker_that_exits_at_once_fails_the_launch_and_leaves_nothing(
    open_hive: OpenHive,
) -> None:
    async with open_hive(early_exit_grace=2.0) as hive:
        with anyio.fail_after(3), pytest.raises(LaunchFailed) as caught:
            await hive.spawn("exit_now")
        err = caught.value
        assert err.code == "WORKER_EXITED_EARLY"
        assert err.exit_code == 1
        assert any("exiting at once" in line for line in err.log_tail)
        assert len(hive.registry) == 0
        assert hive.processes_with(err.worker_id) == []


async def test_refuse_new_makes_spawn_raise_supervisor_closed(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        hive.supervisor.refuse_new()
        with pytest.raises(SupervisorClosed) as caught:
            await hive.spawn()
        assert caught.value.code == "SHUTTING_DOWN"
        assert len(hive.registry) == 0


async def test_provisioning_worker_fails_when_its_download_fails(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        info = hive.supervisor.register(hive.spec())
        failed = hive.supervisor.fail(info.id, "download failed: HTTP 404")
        assert failed.state is WorkerState.FAILED
        assert failed.reason == "download failed: HTTP 404"
        # Its port is free again.
        assert hive.supervisor.register(hive.spec()).port == info.port


async def test_provisioning_worker_starts_when_its_model_arrives(open_hive: OpenHive) -> None:
    async with open_hive() as hive:
        info = hive.supervisor.register(hive.spec())
        assert info.pid is None
        started = await hive.supervisor.start(info.id, hive.model)
        assert started.pid is not None
        assert started.model_path == str(hive.model)
        await hive.wait_state(info.id, WorkerState.IDLE)
        assert os.path.exists(f"/proc/{started.pid}")


async def test_a_provisioning_worker_whose_launch_fails_stays_failed_with_the_reason(
    open_hive: OpenHive,
) -> None:
    """The queen already holds this worker's id (it was announced while its model
    downloaded), so the record must say why it is gone rather than vanish."""
    async with open_hive() as hive:
        info = hive.supervisor.register(hive.spec("exit_now"))
        with pytest.raises(LaunchFailed) as caught:
            await hive.supervisor.start(info.id, hive.model)
        assert caught.value.code == "WORKER_EXITED_EARLY"
        failed = hive.registry.require(info.id)
        assert failed.state is WorkerState.FAILED
        assert failed.pid is None
        assert failed.reason is not None
        assert "early_exit_grace" in failed.reason
        assert hive.supervisor.register(hive.spec()).port == info.port  # port released
