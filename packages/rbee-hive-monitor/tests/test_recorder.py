"""The state file follows the registry: launches, readiness and stops are written; heartbeats
and probes are not."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from rbee_hive_monitor._identity import read_identity
from rbee_hive_monitor._recorder import LaunchDetails, StateRecorder
from rbee_hive_monitor._state_file import PersistedWorker, StateFile
from rbee_hive_registry import WorkerInfo, WorkerRegistry, WorkerState

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform != "linux", reason="process identity needs /proc"),
]


class CountingFile(StateFile):
    """A state file that says when it was written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saves: list[tuple[str, ...]] = []
        self.saved = anyio.Event()

    def save(self, workers: Sequence[PersistedWorker]) -> None:
        super().save(workers)
        self.saves.append(tuple(w.id for w in workers))

    async def next_save(self, count: int) -> tuple[str, ...]:
        with anyio.fail_after(5):
            while len(self.saves) < count:
                await anyio.sleep(0.01)
        return self.saves[count - 1]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["/bin/sleep", "60"])
    yield child
    child.kill()
    child.wait()


def info(worker_id: str, port: int, state: WorkerState = WorkerState.LOADING) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        url=f"http://127.0.0.1:{port}",
        model_ref="hf:org/repo:m.gguf",
        backend="cpu",
        device=0,
        state=state,
        last_activity=datetime.now(UTC),
        port=port,
        model_path="/m.gguf",
    )


def details(worker_id: str) -> LaunchDetails:
    return LaunchDetails(
        env={"CUDA_VISIBLE_DEVICES": ""},
        callback_url=f"http://127.0.0.1:9200/cb/{worker_id}-secret",
        log_path=Path(f"/state/workers/{worker_id}.log"),
        launch=1,
    )


async def test_launch_ready_and_stop_are_written_and_heartbeats_are_not(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    registry = WorkerRegistry()
    state = CountingFile(tmp_path / "workers.json")
    recorder = StateRecorder(registry, state, details)
    async with anyio.create_task_group() as tg:
        await tg.start(recorder.run)
        assert await state.next_save(1) == ()  # the start writes what runs: nothing
        registry.register(info("w1", 8081))
        w = registry.update("w1", pid=sleeper.pid, started_at=datetime.now(UTC))
        assert await state.next_save(2) == ("w1",)
        loaded = state.load().workers
        assert [(x.id, x.ready, x.process.pid) for x in loaded] == [("w1", False, sleeper.pid)]
        assert loaded[0].process == read_identity(sleeper.pid)
        assert loaded[0].callback_url == "http://127.0.0.1:9200/cb/w1-secret"
        assert loaded[0].env == {"CUDA_VISIBLE_DEVICES": ""}

        w = registry.transition("w1", WorkerState.IDLE, expected_revision=w.revision)
        assert await state.next_save(3) == ("w1",)
        assert state.load().workers[0].ready is True

        for _ in range(5):  # heartbeats, probe results, activity: nothing adoption needs
            w = registry.update("w1", last_heartbeat=datetime.now(UTC), failed_health_checks=0)
            w = registry.transition("w1", WorkerState.BUSY)
            w = registry.transition("w1", WorkerState.IDLE)
        registry.transition("w1", WorkerState.STOPPING)
        registry.transition("w1", WorkerState.STOPPED, pid=None)
        assert await state.next_save(4) == ()
        tg.cancel_scope.cancel()
    assert state.saves == [(), ("w1",), ("w1",), ()]


async def test_a_burst_of_changes_is_written_once_the_burst_is_read(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    registry = WorkerRegistry()
    state = CountingFile(tmp_path / "workers.json")
    recorder = StateRecorder(registry, state, details)
    async with anyio.create_task_group() as tg:
        await tg.start(recorder.run)
        for n in range(10):
            registry.register(info(f"w{n}", 8081 + n, WorkerState.IDLE))
            registry.update(f"w{n}", pid=sleeper.pid)
        assert len(await state.next_save(2)) == 10
        tg.cancel_scope.cancel()
    assert len(state.saves) == 2


async def test_a_failed_write_is_logged_once_and_retried_at_the_next_change(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rbee_hive.monitor")
    registry = WorkerRegistry()
    path = tmp_path / "workers.json"
    recorder = StateRecorder(registry, StateFile(path), details)
    registry.register(info("w1", 8081, WorkerState.IDLE))
    registry.update("w1", pid=sleeper.pid)
    path.mkdir()  # something in the way that a rename cannot replace (works as root too)
    (path / "in-the-way").touch()
    assert recorder.write_if_changed() is False
    registry.update("w1", port=8082)
    assert recorder.write_if_changed() is False
    assert caplog.text.count("cannot write the adoption state file") == 1
    (path / "in-the-way").unlink()
    path.rmdir()
    assert recorder.write_if_changed() is True
    assert "written again" in caplog.text
    assert [w.port for w in StateFile(path).load().workers] == [8082]


async def test_a_worker_without_launch_details_or_a_live_process_is_not_written(
    tmp_path: Path,
) -> None:
    registry = WorkerRegistry()
    child = subprocess.Popen(["/bin/true"])
    child.wait()
    registry.register(info("ended", 8081, WorkerState.IDLE))
    registry.update("ended", pid=child.pid)
    registry.register(info("unknown", 8082, WorkerState.IDLE))
    registry.update("unknown", pid=os.getpid())
    recorder = StateRecorder(
        registry,
        StateFile(tmp_path / "workers.json"),
        lambda i: None if i == "unknown" else details(i),
    )
    assert recorder.snapshot() == ()
