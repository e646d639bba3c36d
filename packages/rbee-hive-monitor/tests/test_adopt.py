"""Telling a worker left running by a previous hive from a stranger with its PID, and
watching it though it is not our child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import attrs
import pytest

from rbee_hive_monitor._adopt import AdoptedProcess, adopt_process, reclaim
from rbee_hive_monitor._identity import ProcessIdentity, current_boot_id, read_identity
from rbee_hive_monitor._state_file import PersistedWorker

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="adoption needs /proc and pidfd")


def orphan() -> int:
    """A process whose parent has exited (like a worker of a SIGKILLed hive): not our child."""
    out = subprocess.run(
        ["/bin/sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def alive(pid: int) -> bool:
    return read_identity(pid) is not None


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    made: list[int] = []
    yield made
    for pid in made:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def record(
    pid: int, *, ready: bool = True, port: int = 8081, worker_id: str = "w1"
) -> PersistedWorker:
    identity = read_identity(pid)
    assert identity is not None
    return PersistedWorker(
        id=worker_id,
        model_ref="hf:org/repo:m.gguf",
        backend="cpu",
        device=0,
        engine="rbee",
        port=port,
        url=f"http://127.0.0.1:{port}",
        model_path="/m.gguf",
        ready=ready,
        process=identity,
        log_path="/tmp/w.log",
    )


def test_identity_reads_start_time_group_and_owner_of_a_live_process() -> None:
    me = read_identity(os.getpid())
    assert me is not None
    assert me.pid == os.getpid()
    assert me.pgid == os.getpgid(0)
    assert me.uid == os.getuid()
    assert me.boot_id == current_boot_id()
    assert me.start_time > 0
    assert read_identity(os.getpid()) == me  # stable for the life of the process


def test_identity_of_an_ended_process_or_a_zombie_is_none() -> None:
    child = subprocess.Popen(["/bin/true"])
    # Not yet waited for: a zombie, which is as good as gone.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert read_identity(child.pid) is None
    child.wait()
    assert read_identity(child.pid) is None
    assert read_identity(0) is None


def test_a_live_orphan_is_adopted_and_its_end_is_seen_though_it_is_not_our_child(
    orphans: list[int],
) -> None:
    pid = orphan()
    orphans.append(pid)
    handle = adopt_process(record(pid))
    assert isinstance(handle, AdoptedProcess)
    assert handle.pid == pid
    assert not handle.has_ended()

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _kill_soon(pid))
            with anyio.fail_after(5):
                began = anyio.current_time()
                await handle.wait()
                took = anyio.current_time() - began
        assert handle.returncode is None
        assert handle.has_ended()
        await handle.wait()  # a second wait returns at once
        await handle.aclose()
        return took

    took = anyio.run(main)
    assert took < 2.0  # seen at once, not at a polling tick


async def _kill_soon(pid: int) -> None:
    await anyio.sleep(0.1)
    os.kill(pid, signal.SIGTERM)


def test_a_recycled_pid_is_refused_and_the_stranger_is_not_signalled(
    orphans: list[int],
) -> None:
    pid = orphan()
    orphans.append(pid)
    stale = record(pid)
    stale = attrs.evolve(
        stale, process=attrs.evolve(stale.process, start_time=stale.process.start_time - 1)
    )
    why = adopt_process(stale)
    assert isinstance(why, str)
    assert f"pid {pid} now belongs to another process" in why
    result = reclaim([stale])
    assert result.adopted == ()
    assert result.unfinished == ()
    assert [(w.id, reason) for w, reason in result.dropped] == [("w1", why)]
    assert alive(pid)  # the stranger runs on, untouched


def test_a_record_from_before_a_reboot_is_dropped(orphans: list[int]) -> None:
    pid = orphan()
    orphans.append(pid)
    old = record(pid)
    old = attrs.evolve(old, process=attrs.evolve(old.process, boot_id="another-boot"))
    why = adopt_process(old)
    assert why == "it was recorded before the machine rebooted"
    assert alive(pid)


def test_a_record_of_an_ended_process_is_dropped() -> None:
    child = subprocess.Popen(["/bin/sleep", "60"])
    gone = record(child.pid)
    child.kill()
    child.wait()
    assert adopt_process(gone) == f"its process (pid {child.pid}) has ended"


def test_reclaim_adopts_ready_workers_and_hands_back_unfinished_ones_to_stop(
    orphans: list[int],
) -> None:
    ready_pid, loading_pid, dup_pid = orphan(), orphan(), orphan()
    orphans.extend([ready_pid, loading_pid, dup_pid])
    child = subprocess.Popen(["/bin/sleep", "60"])
    dead = record(child.pid, worker_id="dead", port=8084)
    child.kill()
    child.wait()
    result = reclaim(
        [
            record(ready_pid, worker_id="ready", port=8081),
            record(loading_pid, worker_id="loading", port=8082, ready=False),
            record(dup_pid, worker_id="ready", port=8083),
            dead,
        ]
    )
    assert [(w.id, p.pid) for w, p in result.adopted] == [("ready", ready_pid)]
    assert [(w.id, p.pid) for w, p in result.unfinished] == [("loading", loading_pid)]
    assert sorted(w.id for w, _ in result.dropped) == ["dead", "ready"]
    assert alive(dup_pid)  # a duplicate record is never acted on

    async def close_all() -> None:
        for _, handle in (*result.adopted, *result.unfinished):
            await handle.aclose()

    anyio.run(close_all)


def test_identity_values_compare_on_every_field() -> None:
    a = ProcessIdentity(pid=1, start_time=2, boot_id="b", pgid=1, uid=0)
    assert a == ProcessIdentity(pid=1, start_time=2, boot_id="b", pgid=1, uid=0)
    assert a != attrs.evolve(a, uid=1000)
    assert a != attrs.evolve(a, pgid=7)


def test_the_boot_id_is_read_from_the_kernel() -> None:
    assert current_boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
