"""A hive killed with kill -9 leaves its workers running; the next one adopts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from rbee_hive_monitor import StopOutcome, Supervisor, SupervisorSettings, openai_engine
from rbee_hive_monitor._identity import read_identity
from rbee_hive_monitor._state_file import StateFile
from rbee_hive_monitor.exceptions import StateFileInUse
from rbee_hive_registry import WorkerRegistry, WorkerState

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(sys.platform != "linux", reason="adoption needs /proc and pidfd"),
]

HIVE = Path(__file__).with_name("adoption_hive.py")


class KilledHive:
    """Runs adoption_hive.py, then SIGKILLs it: its workers are left running."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen[str] | None = None
        self.workers: list[dict[str, Any]] = []

    def run_and_kill(self, count: int, *options: str) -> list[dict[str, Any]]:
        self.proc = subprocess.Popen(
            [sys.executable, str(HIVE), str(self.tmp), str(count), *options],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the first hive exited before its workers were ready"
        self.workers = json.loads(line)
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        return self.workers

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for worker in self.workers:
            if read_identity(worker["pid"]) is not None:
                os.killpg(worker["pid"], signal.SIGKILL)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def killed_hive(tmp_path: Path) -> Iterator[KilledHive]:
    hive = KilledHive(tmp_path)
    yield hive
    hive.cleanup()


async def test_workers_of_a_killed_hive_are_adopted_served_and_stopped(
    open_hive: OpenHive, killed_hive: KilledHive, tmp_path: Path
) -> None:
    left = killed_hive.run_and_kill(3)
    assert all(read_identity(w["pid"]) is not None for w in left)  # orphans, still serving
    async with open_hive(state_file=tmp_path / "workers.json") as hive:
        adopted = {w.id: w for w in hive.registry}
        assert sorted(adopted) == ["w0", "w1", "w2"]
        for before in left:
            now = adopted[before["id"]]
            assert (now.pid, now.port, now.url) == (before["pid"], before["port"], before["url"])
            assert now.state is WorkerState.IDLE
            assert now.restart_count == 0
            await hive.serving(now)
        # Probes resume: they answer, so the workers stay ready and keep their processes.
        with anyio.move_on_after(1.2):  # more than two probe intervals
            await hive.wait_for("w0", lambda w: w.state is not WorkerState.IDLE)
            pytest.fail("an adopted worker left IDLE")
        assert all(w.failed_health_checks == 0 for w in hive.registry)
        assert [w.pid for w in hive.registry] == [w["pid"] for w in left]

        outcome = await hive.supervisor.stop("w1")
        assert outcome is StopOutcome.GRACEFUL
        stopped = hive.registry.require("w1")
        assert stopped.state is WorkerState.STOPPED
        assert stopped.exit_code is None  # not our child: its status is not ours to know
        assert read_identity(left[1]["pid"]) is None
        remaining = [w.id for w in StateFile(tmp_path / "workers.json").load().workers]
        with anyio.fail_after(5):
            while remaining != ["w0", "w2"]:
                await anyio.sleep(0.02)
                remaining = [w.id for w in StateFile(tmp_path / "workers.json").load().workers]
    # Closing the supervisor ends the adopted ones too, and the state file says none run.
    assert all(read_identity(w["pid"]) is None for w in left)
    assert StateFile(tmp_path / "workers.json").load().workers == ()


async def test_an_adopted_worker_that_crashes_is_restarted_as_a_new_child(
    open_hive: OpenHive, killed_hive: KilledHive, tmp_path: Path
) -> None:
    (left,) = killed_hive.run_and_kill(1)
    async with open_hive(state_file=tmp_path / "workers.json") as hive:
        assert hive.registry.require("w0").pid == left["pid"]
        os.kill(left["pid"], signal.SIGKILL)
        again = await hive.wait_for(
            "w0", lambda w: w.state is WorkerState.IDLE and w.pid not in (None, left["pid"])
        )
        assert again.restart_count == 1
        assert again.port == left["port"]
        assert again.exit_code is None  # the adopted process's status was unknowable
        assert again.pid is not None
        assert parent_of(again.pid) == os.getpid()  # a child of this hive, not an orphan


async def test_a_dead_record_is_dropped_and_a_recycled_pid_is_never_signalled(
    open_hive: OpenHive, killed_hive: KilledHive, tmp_path: Path
) -> None:
    left = killed_hive.run_and_kill(2)
    # w0 dies while no hive runs; w1's record is made to point at a stranger's pid.
    os.killpg(left[0]["pid"], signal.SIGKILL)
    stranger = subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
    try:
        state = StateFile(tmp_path / "workers.json")
        document = json.loads(state.path.read_text())
        for record in document["workers"]:
            if record["id"] == "w1":
                os.killpg(record["process"]["pid"], signal.SIGKILL)
                record["process"]["pid"] = record["process"]["pgid"] = stranger.pid
        state.path.write_text(json.dumps(document))
        with anyio.fail_after(5):
            while read_identity(left[0]["pid"]) or read_identity(left[1]["pid"]):
                await anyio.sleep(0.02)
        async with open_hive(state_file=state.path) as hive:
            assert list(hive.registry) == []
        assert stranger.poll() is None  # same pid, other start time: left alone
    finally:
        stranger.kill()
        stranger.wait()


async def test_with_kill_workers_on_exit_a_killed_hive_leaves_nothing_to_adopt(
    open_hive: OpenHive, killed_hive: KilledHive, tmp_path: Path
) -> None:
    left = killed_hive.run_and_kill(2, "kill_workers_on_exit")
    with anyio.fail_after(5):
        while any(read_identity(w["pid"]) for w in left):
            await anyio.sleep(0.02)
    async with open_hive(state_file=tmp_path / "workers.json") as hive:
        assert list(hive.registry) == []


async def test_a_worker_that_was_still_loading_is_stopped_not_adopted(
    open_hive: OpenHive, killed_hive: KilledHive, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (left,) = killed_hive.run_and_kill(1)
    state = StateFile(tmp_path / "workers.json")
    document = json.loads(state.path.read_text())
    document["workers"][0]["ready"] = False  # as if the hive died before the ready callback
    state.path.write_text(json.dumps(document))
    async with open_hive(state_file=state.path) as hive:
        assert list(hive.registry) == []
        with anyio.fail_after(5):
            while read_identity(left["pid"]) is not None:
                await anyio.sleep(0.02)
    assert "was loading or being stopped when the previous hive went down" in caplog.text


async def test_two_supervisors_never_keep_one_state_file(
    open_hive: OpenHive, tmp_path: Path
) -> None:
    settings = SupervisorSettings(log_dir=tmp_path / "other", state_file=tmp_path / "workers.json")
    async with open_hive(state_file=tmp_path / "workers.json"):
        with pytest.raises(StateFileInUse, match="another running rbee-hive"):
            async with Supervisor.open(WorkerRegistry(), settings, (openai_engine(),)):
                pass  # pragma: no cover
    async with Supervisor.open(WorkerRegistry(), settings, (openai_engine(),)):
        pass  # free again once the first has closed
