"""GracefulShutdown with a real Supervisor and real worker processes (the fake worker, run
in llm-worker-rbee's test mode so it needs no callback receiver)."""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import rbee_hive_shutdown
from rbee_hive_monitor import (
    Supervisor,
    SupervisorClosed,
    SupervisorSettings,
    WorkerSpec,
    rbee_engine,
)
from rbee_hive_registry import WorkerRegistry, WorkerState
from rbee_hive_shutdown import GracefulShutdown, ShutdownReport

FAKE_WORKER = Path(__file__).resolve().parents[2] / "rbee-hive-monitor" / "tests" / "fake_worker.py"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def worker_ports() -> tuple[int, int]:
    """A random block of worker ports below the ephemeral range, not the default 8081-9000,
    so two test runs on one machine rarely hand their workers the same ports."""
    first = random.randrange(10_000, 32_700, 100)
    return first, first + 99


class TestModeCallbacks:
    """The real worker skips its callback when the URL contains localhost:9999."""

    def issue(self, worker_id: str) -> str:
        return f"http://localhost:9999/v1/workers/ready/{worker_id}"

    def revoke(self, worker_id: str) -> None:
        pass


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    assert FAKE_WORKER.exists(), FAKE_WORKER
    settings = SupervisorSettings(
        log_dir=tmp_path / "workers", stop_timeout=2.0, port_range=worker_ports()
    )
    engine = rbee_engine(FAKE_WORKER, launcher=(sys.executable, "-S"))
    async with Supervisor.open(
        WorkerRegistry(), settings, [engine], callbacks=TestModeCallbacks()
    ) as sup:
        yield sup


async def spawn(sup: Supervisor, tmp_path: Path, n: int) -> list[int]:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    pids = []
    for _ in range(n):
        info = await sup.spawn(WorkerSpec(model_ref=f"file:{model}"), model)
        assert info.pid is not None
        pids.append(info.pid)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1].split()[0] != "Z"


async def test_a_trigger_stops_every_worker_and_lets_the_server_go(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    pids = await spawn(supervisor, tmp_path, 3)
    reports: list[ShutdownReport] = []
    flushed = anyio.Event()

    async def flush() -> None:
        flushed.set()

    shutdown = GracefulShutdown(
        supervisor, deadline=10, after_workers=[flush], on_report=reports.append
    )
    async with anyio.create_task_group() as tg:
        await tg.start(shutdown.run)
        assert shutdown.trigger("test")
        with anyio.fail_after(10):
            await shutdown.server_may_stop.wait()
    assert flushed.is_set()
    assert len(reports) == 1
    report = reports[0]
    assert report.workers.total == 3
    assert report.workers.graceful == 3  # SIGINT: the rbee worker exits 0
    assert report.clean
    assert not any(alive(pid) for pid in pids)


async def test_new_spawns_are_refused_once_the_stop_began(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    shutdown = GracefulShutdown(supervisor, deadline=5)
    shutdown.trigger("test")
    assert shutdown.stopping
    with pytest.raises(SupervisorClosed):
        await spawn(supervisor, tmp_path, 1)


async def test_sigterm_starts_it_and_a_second_signal_kills_at_once(
    tmp_path: Path,
) -> None:
    settings = SupervisorSettings(
        log_dir=tmp_path / "workers", stop_timeout=30.0, port_range=worker_ports()
    )
    engine = rbee_engine(FAKE_WORKER, launcher=(sys.executable, "-S"))
    os.environ["FAKE_WORKER_MODE"] = "hang"  # ignores SIGINT and SIGTERM: only SIGKILL works
    try:
        registry = WorkerRegistry()
        async with Supervisor.open(
            registry, settings, [engine], callbacks=TestModeCallbacks()
        ) as sup:
            pids = await spawn(sup, tmp_path, 2)
            shutdown = GracefulShutdown(sup, deadline=30)
            async with anyio.create_task_group() as tg:
                await tg.start(shutdown.run)
                begin = anyio.current_time()
                os.kill(os.getpid(), signal.SIGTERM)
                await anyio.sleep(0.5)
                assert shutdown.stopping
                assert all(alive(pid) for pid in pids)  # hung: the graceful stop is waiting
                os.kill(os.getpid(), signal.SIGINT)
                with anyio.fail_after(10):
                    await shutdown.server_may_stop.wait()
            assert anyio.current_time() - begin < 10
            assert shutdown.report is not None
            assert shutdown.report.forced_by_second_signal
            assert not any(alive(pid) for pid in pids)
            states = {w.state for w in registry.list()}
            assert states <= {WorkerState.STOPPED, WorkerState.FAILED}
    finally:
        del os.environ["FAKE_WORKER_MODE"]


async def test_one_signal_delivered_twice_is_not_a_force(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    pids = await spawn(supervisor, tmp_path, 1)
    shutdown = GracefulShutdown(supervisor, deadline=10)
    async with anyio.create_task_group() as tg:
        await tg.start(shutdown.run)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. `timeout` forwarding what we also got
        with anyio.fail_after(10):
            await shutdown.server_may_stop.wait()
    assert shutdown.report is not None
    assert not shutdown.report.forced_by_second_signal
    assert shutdown.report.workers.graceful == 1
    assert not any(alive(pid) for pid in pids)


def test_public_api_matches_all() -> None:
    exported = {n for n in dir(rbee_hive_shutdown) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_shutdown.__all__) == exported
