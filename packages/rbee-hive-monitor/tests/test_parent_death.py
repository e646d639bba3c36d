"""kill_workers_on_exit: with PDEATHSIG a worker dies with the hive that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rbee_hive_monitor import InvalidSupervisorSetting, SupervisorSettings
from rbee_hive_monitor._identity import read_identity
from rbee_hive_monitor._process import ProgramNotStarted, launch_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

# A stand-in for the hive: launches `sleep 60` as a worker, prints its pid, then waits to die.
HIVE = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    import anyio
    from rbee_hive_monitor._process import launch_process

    async def main() -> None:
        sig = None if sys.argv[2] == "off" else signal.SIGTERM
        process, _ = await launch_process(
            ["sleep", "60"], env={"PATH": "/usr/bin:/bin"}, log_path=Path(sys.argv[1]),
            header="launch 1 of w1", secret_urls=(), parent_death_signal=sig,
        )
        print(process.pid, flush=True)
        await anyio.sleep(120)

    anyio.run(main)
    """
)


def worker_of_a_hive(tmp_path: Path, option: str) -> tuple[subprocess.Popen[str], int]:
    hive = subprocess.Popen(
        [sys.executable, "-c", HIVE, str(tmp_path / "w1.log"), option],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hive.stdout is not None
    worker_pid = int(hive.stdout.readline())
    return hive, worker_pid


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read_identity(pid) is None:
            return True
        time.sleep(0.02)
    return False


def command_line(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]


def test_with_the_option_a_worker_dies_when_its_hive_is_killed(tmp_path: Path) -> None:
    hive, worker = worker_of_a_hive(tmp_path, "on")
    try:
        # The worker becomes the program itself (exec'd over the trampoline), same pid.
        deadline = time.monotonic() + 5
        while command_line(worker) != [b"sleep", b"60"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert command_line(worker) == [b"sleep", b"60"]
        assert os.getpgid(worker) == worker  # still the leader of its own group
        hive.kill()
        hive.wait()
        assert gone_within(worker, 5)
    finally:
        if read_identity(worker) is not None:
            os.kill(worker, signal.SIGKILL)
        hive.kill()
        hive.wait()
        assert hive.stdout is not None
        hive.stdout.close()


def test_without_the_option_the_worker_outlives_a_killed_hive(tmp_path: Path) -> None:
    hive, worker = worker_of_a_hive(tmp_path, "off")
    try:
        hive.kill()
        hive.wait()
        assert not gone_within(worker, 0.5)  # an orphan, left for adoption
    finally:
        os.kill(worker, signal.SIGKILL)
        assert hive.stdout is not None
        hive.stdout.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("program", "error"),
    [
        ("/nonexistent/llm-worker-rbee", FileNotFoundError),
        ("no-such-worker-program", FileNotFoundError),
    ],
)
async def test_a_program_that_cannot_run_is_refused_before_the_fork(
    tmp_path: Path, program: str, error: type[OSError]
) -> None:
    with pytest.raises(ProgramNotStarted) as caught:
        await launch_process(
            [program],
            env={"PATH": "/usr/bin:/bin"},
            log_path=tmp_path / "w.log",
            header="launch 1 of w1",
            secret_urls=(),
            parent_death_signal=signal.SIGTERM,
        )
    assert isinstance(caught.value.error, error)
    assert program in (tmp_path / "w.log").read_text()


@pytest.mark.anyio
async def test_a_program_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "worker"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o644)
    with pytest.raises(ProgramNotStarted) as caught:
        await launch_process(
            [str(program)],
            env={},
            log_path=tmp_path / "w.log",
            header="launch 1 of w1",
            secret_urls=(),
            parent_death_signal=signal.SIGTERM,
        )
    assert isinstance(caught.value.error, PermissionError)


def test_the_setting_is_refused_off_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(InvalidSupervisorSetting, match="kill_workers_on_exit needs Linux"):
        SupervisorSettings(log_dir=tmp_path, kill_workers_on_exit=True)
    assert SupervisorSettings(log_dir=tmp_path).kill_workers_on_exit is False
