from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from rbee_hive_registry import (
    ChangeKind,
    DuplicateWorker,
    FeedLagged,
    IllegalTransition,
    StaleUpdate,
    WorkerEvent,
    WorkerInfo,
    WorkerNotFound,
    WorkerRegistry,
    WorkerState,
)

MakeWorker = Callable[..., WorkerInfo]


def test_registered_worker_can_be_read_back(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    stored = reg.register(make_worker("worker-a"))
    assert reg.get("worker-a") == stored
    assert stored.revision == 0
    assert "worker-a" in reg
    assert len(reg) == 1


def test_a_duplicate_id_is_refused_and_the_first_record_kept(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a", url="http://127.0.0.1:8081"))
    with pytest.raises(DuplicateWorker, match="worker-a"):
        reg.register(make_worker("worker-a", url="http://127.0.0.1:9999"))
    assert reg.require("worker-a").url == "http://127.0.0.1:8081"


def test_list_keeps_registration_order(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    ids = [f"worker-{n}" for n in (5, 1, 9, 3)]
    for worker_id in ids:
        reg.register(make_worker(worker_id))
    reg.transition("worker-1", WorkerState.IDLE)
    assert [w.id for w in reg.list()] == ids
    assert [w.id for w in reg.list(WorkerState.IDLE)] == ["worker-1"]


def test_remove_returns_the_record_and_forgets_it(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a"))
    removed = reg.remove("worker-a")
    assert removed.id == "worker-a"
    assert reg.get("worker-a") is None
    with pytest.raises(WorkerNotFound):
        reg.remove("worker-a")


def test_illegal_transition_names_both_states(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a", state=WorkerState.STOPPED))
    with pytest.raises(IllegalTransition, match="'stopped' to 'idle'"):
        reg.transition("worker-a", WorkerState.IDLE)
    assert reg.require("worker-a").state is WorkerState.STOPPED


def test_transition_sets_fields_in_the_same_write(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a", state=WorkerState.IDLE, pid=100))
    after = reg.transition("worker-a", WorkerState.LOADING, pid=None, exit_code=-9, restart_count=1)
    assert (after.state, after.pid, after.exit_code, after.restart_count) == (
        WorkerState.LOADING,
        None,
        -9,
        1,
    )
    assert after.revision == 1


def test_a_stale_read_cannot_revert_a_newer_state(make_worker: MakeWorker) -> None:
    """The original monitor read `loading`, probed, and wrote `loading` back over `idle`."""
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a"))
    seen_by_probe = reg.require("worker-a")
    reg.transition("worker-a", WorkerState.IDLE)  # the ready callback lands meanwhile
    with pytest.raises(StaleUpdate, match="revision 0"):
        reg.update("worker-a", expected_revision=seen_by_probe.revision, failed_health_checks=0)
    with pytest.raises(StaleUpdate, match="state loading"):
        reg.transition("worker-a", WorkerState.FAILED, expected_state=WorkerState.LOADING)
    assert reg.require("worker-a").state is WorkerState.IDLE


def test_update_refuses_the_fields_the_registry_owns(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a"))
    with pytest.raises(TypeError, match="transition"):
        reg.update("worker-a", state=WorkerState.IDLE)
    with pytest.raises(TypeError):
        reg.update("worker-a", revision=99)


def test_find_idle_matches_model_and_state_exactly(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("busy", state=WorkerState.BUSY))
    reg.register(make_worker("other-model", state=WorkerState.IDLE, model_ref="hf:a/b"))
    reg.register(make_worker("idle", state=WorkerState.IDLE))
    found = reg.find_idle("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF")
    assert found is not None
    assert found.id == "idle"
    assert reg.find_idle("hf:nobody/nothing") is None


def test_counts_by_state_follow_every_write(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    for n in range(4):
        reg.register(make_worker(f"w{n}"))
    reg.transition("w0", WorkerState.IDLE)
    reg.transition("w1", WorkerState.FAILED)
    reg.remove("w2")
    counts = reg.counts_by_state()
    assert counts[WorkerState.LOADING] == 1
    assert counts[WorkerState.IDLE] == 1
    assert counts[WorkerState.FAILED] == 1
    assert counts[WorkerState.BUSY] == 0
    assert sum(counts.values()) == len(reg) == 3


@pytest.mark.anyio
async def test_every_subscriber_sees_every_change_in_order(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    with reg.subscribe() as first, reg.subscribe() as second:
        reg.register(make_worker("worker-a"))
        reg.transition("worker-a", WorkerState.IDLE)
        reg.remove("worker-a")
        for sub in (first, second):
            kinds = []
            for _ in range(3):
                item = await sub.receive()
                assert isinstance(item, WorkerEvent)
                kinds.append((item.kind, item.worker.state))
            assert kinds == [
                (ChangeKind.ADDED, WorkerState.LOADING),
                (ChangeKind.UPDATED, WorkerState.IDLE),
                (ChangeKind.REMOVED, WorkerState.IDLE),
            ]


@pytest.mark.anyio
async def test_a_waiting_subscriber_wakes_on_the_next_change(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    received: list[WorkerEvent | FeedLagged] = []
    with reg.subscribe() as sub:
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                async for item in sub:
                    received.append(item)
                    return

            tg.start_soon(follow)
            await anyio.wait_all_tasks_blocked()
            reg.register(make_worker("worker-a"))
    assert len(received) == 1


@pytest.mark.anyio
async def test_a_slow_subscriber_is_told_how_many_events_it_missed(
    make_worker: MakeWorker,
) -> None:
    reg = WorkerRegistry()
    with reg.subscribe(capacity=2) as slow:
        for n in range(5):
            reg.register(make_worker(f"w{n}"))
        first = await slow.receive()
        assert first == FeedLagged(missed=3)
        rest = [await slow.receive(), await slow.receive()]
        assert [e.worker.id for e in rest if isinstance(e, WorkerEvent)] == ["w3", "w4"]
        assert slow.receive_nowait() is None


@pytest.mark.anyio
async def test_iteration_ends_after_close_once_the_buffer_is_read(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    sub = reg.subscribe()
    reg.register(make_worker("worker-a"))
    sub.close()
    reg.register(make_worker("worker-b"))  # after close: not delivered
    items = [item async for item in sub]
    assert [i.worker.id for i in items if isinstance(i, WorkerEvent)] == ["worker-a"]


@pytest.mark.anyio
async def test_concurrent_tasks_never_lose_a_write(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    reg.register(make_worker("worker-a", state=WorkerState.IDLE))

    async def bump() -> None:
        for _ in range(100):
            current = reg.require("worker-a")
            await anyio.sleep(0)
            while True:
                try:
                    reg.update(
                        "worker-a",
                        expected_revision=current.revision,
                        failed_health_checks=current.failed_health_checks + 1,
                    )
                    break
                except StaleUpdate:
                    current = reg.require("worker-a")

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(bump)
    assert reg.require("worker-a").failed_health_checks == 1000


def test_generation_changes_on_every_write_and_only_then(make_worker: MakeWorker) -> None:
    reg = WorkerRegistry()
    seen = [reg.generation]
    reg.register(make_worker("worker-a"))
    seen.append(reg.generation)
    reg.list()
    reg.counts_by_state()
    assert reg.generation == seen[-1]
    reg.transition("worker-a", WorkerState.IDLE)
    seen.append(reg.generation)
    reg.remove("worker-a")
    seen.append(reg.generation)
    assert seen == sorted(set(seen))
