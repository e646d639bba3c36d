"""``WorkerPool``: the spawn flow below HTTP (placement, admission, launch), admissions given
back when workers end (also after the change feed lagged), and the model-in-use rule.

Real supervisor and fake worker; resources through ``FakeNvml`` and a meminfo file; the
provisioner with ``file:`` models, so nothing leaves the machine."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

from rbee_hive_monitor import (
    EngineUnavailable,
    LaunchFailed,
    ModelInUse,
    SpawnRequest,
    StopOutcome,
    WorkerPool,
    WorkerSpec,
    rbee_engine,
)
from rbee_hive_provisioner import (
    InvalidModelRef,
    ModelNotInCatalog,
    Provisioner,
    ProvisionerSettings,
)
from rbee_hive_registry import WorkerInfo, WorkerState
from rbee_hive_resources import (
    Admission,
    AdmissionRefused,
    Backend,
    FakeGpu,
    FakeNvml,
    GiB,
    GpuProcess,
    HostResources,
    MiB,
    NvmlMemory,
    PlatformInfo,
    ProcMemInfo,
    RefusalCode,
)
from rbee_hive_restart import RestartPolicy

if TYPE_CHECKING:
    from conftest import Hive, OpenHive

pytestmark = pytest.mark.anyio

GPU_UUID = "GPU-6ee8e52d-24f3-0029-ccbf-83d10b7c657f"


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, event: str, *, outcome: str, details: dict[str, Any]) -> None:
        self.records.append((event, outcome, details))

    def events(self) -> list[tuple[str, str]]:
        return [(event, outcome) for event, outcome, _ in self.records]


class Counters:
    def __init__(self) -> None:
        self.spawns: list[str] = []
        self.refusals: list[str] = []

    def count_spawn(self, outcome: str) -> None:
        self.spawns.append(outcome)

    def count_admission_refusal(self, code: str) -> None:
        self.refusals.append(code)


@attrs.define
class Pool:
    hive: Hive
    pool: WorkerPool
    admission: Admission
    audit: Audit
    counters: Counters
    nvml: FakeNvml
    set_ram: Callable[[int], None]

    @property
    def model_ref(self) -> str:
        return f"file:{self.hive.model}"

    def request(self, backend: str = "cpu", device: int | str = 0, **kw: Any) -> SpawnRequest:
        fields: dict[str, Any] = {
            "model_ref": self.model_ref,
            "backend": backend,
            "device": device,
            "engine": "rbee",
        }
        fields.update(kw)
        return SpawnRequest(**fields)

    def reserved(self) -> set[str]:
        return {r.worker_id for r in self.admission.reservations()}


OpenPool = Callable[..., AbstractAsyncContextManager[Pool]]


def h200(processes: tuple[GpuProcess, ...] = ()) -> FakeGpu:
    return FakeGpu(
        name="NVIDIA H200",
        uuid=GPU_UUID,
        pci_bus_id="00000000:19:00.0",
        memory=NvmlMemory(total_bytes=150 * GiB, free_bytes=140 * GiB, used_bytes=10 * GiB),
        compute_capability=(9, 0),
        processes=processes,
    )


@pytest.fixture
def open_pool(open_hive: OpenHive, tmp_path: Path) -> OpenPool:
    @contextlib.asynccontextmanager
    async def factory(*, feed_capacity: int | None = None, **overrides: Any) -> AsyncIterator[Pool]:
        meminfo = tmp_path / "meminfo"

        def set_ram(available: int) -> None:
            meminfo.write_text(
                f"MemTotal: {64 * GiB // 1024} kB\nMemAvailable: {available // 1024} kB\n",
                encoding="ascii",
            )

        set_ram(32 * GiB)
        nvml = FakeNvml((h200(),))
        host = HostResources(
            nvml=nvml,
            memory_probe=ProcMemInfo(meminfo),
            platform=PlatformInfo(system="Linux", machine="x86_64"),
        )
        admission = Admission(host)
        audit, counters = Audit(), Counters()
        settings = ProvisionerSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "hub")
        async with (
            open_hive(**overrides) as hive,
            Provisioner.open(settings) as provisioner,
            anyio.create_task_group() as tg,
        ):
            pool = WorkerPool(
                hive.registry,
                hive.supervisor,
                provisioner,
                admission,
                audit=audit,
                counters=counters,
                feed_capacity=feed_capacity,
            )
            await tg.start(pool.run)
            yield Pool(hive, pool, admission, audit, counters, nvml, set_ram)
            await hive.supervisor.stop_all(5)
            tg.cancel_scope.cancel()

    return factory


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


async def released(p: Pool, worker_id: str) -> None:
    with anyio.fail_after(5):
        while worker_id in p.reserved():
            await anyio.sleep(0.01)


# ---------------------------------------------------------------- spawning


async def test_a_cpu_spawn_is_placed_admitted_launched_and_audited(open_pool: OpenPool) -> None:
    async with open_pool() as p:
        worker = await p.pool.spawn(p.request())

        assert worker.state in (WorkerState.LOADING, WorkerState.IDLE)
        assert worker.pid is not None
        assert environ_of(worker.pid)["CUDA_VISIBLE_DEVICES"] == ""  # a cpu worker sees no GPU
        (reservation,) = p.admission.reservations()
        assert (reservation.worker_id, reservation.backend) == (worker.id, Backend.CPU)
        assert p.audit.events() == [("worker.spawn", "accepted")]
        assert p.audit.records[0][2]["worker_id"] == worker.id


async def test_a_gpu_named_by_uuid_runs_on_its_index_pinned_by_its_uuid(
    open_pool: OpenPool,
) -> None:
    async with open_pool() as p:
        worker = await p.pool.spawn(p.request("cuda", GPU_UUID.lower()))

        assert (worker.backend, worker.device) == ("cuda", 0)
        assert worker.pid is not None
        assert environ_of(worker.pid)["CUDA_VISIBLE_DEVICES"] == GPU_UUID
        reservation = p.admission.reservation(worker.id)
        assert reservation is not None
        assert reservation.gpu_uuid == GPU_UUID


async def test_a_spawn_that_does_not_fit_is_refused_counted_and_audited_and_nothing_runs(
    open_pool: OpenPool,
) -> None:
    async with open_pool() as p:
        p.set_ram(256 * MiB)

        with pytest.raises(AdmissionRefused) as caught:
            await p.pool.spawn(p.request())

        assert caught.value.code is RefusalCode.INSUFFICIENT_RAM
        assert p.hive.registry.list() == []
        assert p.reserved() == set()
        assert p.counters.refusals == ["INSUFFICIENT_RAM"]
        assert p.counters.spawns == ["refused"]
        assert p.audit.events() == [("worker.spawn", "refused")]
        assert p.audit.records[0][2]["code"] == "INSUFFICIENT_RAM"


@pytest.mark.parametrize(
    ("backend", "device", "code"),
    [
        ("cuda", 7, "INVALID_DEVICE"),
        ("cpu", 1, "INVALID_DEVICE"),
        ("metal", 0, "BACKEND_UNAVAILABLE"),
    ],
)
async def test_a_device_that_is_not_here_is_refused_before_anything_starts(
    open_pool: OpenPool, backend: str, device: int, code: str
) -> None:
    async with open_pool() as p:
        with pytest.raises(AdmissionRefused) as caught:
            await p.pool.spawn(p.request(backend, device))

        assert caught.value.code == code
        assert p.hive.registry.list() == []
        assert p.counters.refusals == [code]


async def test_a_bad_model_reference_is_refused_with_its_code_in_the_audit(
    open_pool: OpenPool,
) -> None:
    async with open_pool() as p:
        with pytest.raises(InvalidModelRef):
            await p.pool.spawn(p.request(model_ref="nonsense://x"))

        assert p.audit.records[-1][:2] == ("worker.spawn", "refused")
        assert p.audit.records[-1][2]["code"] == "INVALID_MODEL_REF"
        assert p.counters.refusals == []  # not an admission refusal


@pytest.mark.parametrize(
    "model_ref", ["file", "hf:acme/not-downloaded:model.gguf"], ids=["local", "hub"]
)
async def test_a_spawn_on_an_engine_that_is_not_installed_is_refused_before_anything_starts(
    open_pool: OpenPool, tmp_path: Path, model_ref: str
) -> None:
    # A fresh install: the default engine's llm-worker-rbee is nowhere to be found.
    missing = rbee_engine(tmp_path / "not-installed" / "llm-worker-rbee")
    async with open_pool(engines=(missing,)) as p:
        ref = p.model_ref if model_ref == "file" else model_ref
        with pytest.raises(EngineUnavailable) as caught:
            await p.pool.spawn(p.request(model_ref=ref))

        assert caught.value.code == "WORKER_BINARY_NOT_FOUND"
        assert "rbee-hive[llama-cpp]" in str(caught.value)  # the way out is named
        assert p.hive.registry.list() == []
        assert p.reserved() == set()
        assert p.pool.provisioner.downloads() == []  # nothing fetched for a worker that can't run
        assert p.audit.records[-1][:2] == ("worker.spawn", "refused")
        assert p.audit.records[-1][2]["code"] == "WORKER_BINARY_NOT_FOUND"


async def test_a_worker_that_exits_at_launch_gives_its_admission_back(
    open_pool: OpenPool,
) -> None:
    fake = Path(__file__).with_name("fake_worker.py")
    exiting = attrs.evolve(
        rbee_engine(fake, launcher=(sys.executable, "-S")), env={"FAKE_WORKER_MODE": "exit_now"}
    )
    async with open_pool(engines=(exiting,)) as p:
        with pytest.raises(LaunchFailed):
            await p.pool.spawn(p.request())

        assert p.hive.registry.list() == []
        assert p.reserved() == set()


async def test_a_ready_worker_is_measured_and_stops_holding_its_estimate(
    open_pool: OpenPool,
) -> None:
    async with open_pool() as p:
        worker = await p.pool.spawn(p.request())
        await p.hive.wait_state(worker.id, WorkerState.IDLE)

        with anyio.fail_after(5):
            while (reservation := p.admission.reservation(worker.id)) and reservation.holds_memory:
                await anyio.sleep(0.01)
        assert reservation is not None  # its slot stays counted
        measured = p.admission.measurement(p.model_ref, "cpu")
        assert measured is not None
        assert measured.used_bytes > 0  # the fake worker's resident memory


async def test_a_worker_that_fails_for_good_gives_its_admission_back(
    open_pool: OpenPool,
) -> None:
    async with open_pool(restart_policy=RestartPolicy.NEVER) as p:
        worker = await p.pool.spawn(p.request())
        await p.hive.wait_state(worker.id, WorkerState.IDLE)
        assert worker.pid is not None
        assert worker.id in p.reserved()

        os.kill(worker.pid, signal.SIGKILL)  # it dies, and the policy says never restart
        await p.hive.wait_state(worker.id, WorkerState.FAILED)

        await released(p, worker.id)


async def test_stop_gives_the_admission_back_at_once_and_is_audited(open_pool: OpenPool) -> None:
    async with open_pool() as p:
        worker = await p.pool.spawn(p.request())
        await p.hive.wait_state(worker.id, WorkerState.IDLE)

        stopped = await p.pool.stop(worker.id)

        assert stopped.outcome in (StopOutcome.GRACEFUL, StopOutcome.FORCED)
        assert stopped.last.id == worker.id
        assert p.hive.registry.get(worker.id) is None
        assert p.reserved() == set()  # not later, when the feed gets there
        assert ("worker.stop", stopped.outcome.value) in p.audit.events()


# ---------------------------------------------------------------- the model-in-use rule


async def test_a_model_a_live_worker_uses_cannot_be_removed(open_pool: OpenPool) -> None:
    async with open_pool() as p:
        worker = await p.pool.spawn(p.request())

        with pytest.raises(ModelInUse) as caught:
            await p.pool.remove_model(p.model_ref)

        assert caught.value.code == "MODEL_IN_USE"
        assert caught.value.workers == (worker.id,)
        assert p.hive.model.exists()
        await p.pool.stop(worker.id)
        with pytest.raises(ModelNotInCatalog):  # past the rule: a file: model has no entry
            await p.pool.remove_model(p.model_ref)
        assert ("model.remove", "removed") not in p.audit.events()


# ---------------------------------------------------------------- resync (issue 9 item 6)


async def test_a_lagging_feed_does_not_leak_admissions(open_pool: OpenPool) -> None:
    """Five workers end in one burst while the pool's feed holds one event: the pool gets a
    FeedLagged, resynchronises from the worker list, and capacity is what it was before."""
    async with open_pool(feed_capacity=1) as p:
        before = p.admission.capacity(p.model_ref, 64, "cpu", 0)
        ids = []
        for n in range(5):
            spec = WorkerSpec(model_ref=p.model_ref, worker_id=f"w-{n}")
            p.admission.admit(p.model_ref, 64, "cpu", 0, f"w-{n}")
            ids.append(p.hive.supervisor.register(spec).id)
        assert p.reserved() == set(ids)

        for worker_id in ids:  # no await in between: the pool cannot keep up
            p.hive.supervisor.fail(worker_id, "its download failed")

        with anyio.fail_after(5):
            while p.reserved():
                await anyio.sleep(0.01)
        after = p.admission.capacity(p.model_ref, 64, "cpu", 0)
        assert after.workers_on_device == before.workers_on_device == 0
        assert after.held_bytes == before.held_bytes == 0


async def test_resync_releases_ended_workers_and_counts_ones_it_did_not_spawn(
    open_pool: OpenPool,
) -> None:
    async with open_pool() as p:
        p.admission.admit(p.model_ref, 64, "cpu", 0, "w-gone")  # never registered
        adopted = WorkerInfo(
            id="w-adopted",
            url="http://127.0.0.1:1",
            model_ref=p.model_ref,
            backend="cuda",
            device=0,
            state=WorkerState.IDLE,
            last_activity=datetime.now(UTC),
            port=1,
            pid=999_999,
        )

        done = p.pool.resync()
        assert done.released == ("w-gone",)
        p.hive.registry.register(adopted)  # as a restarted hive adopting a running worker
        with anyio.fail_after(5):
            while p.admission.reservation("w-adopted") is None:
                await anyio.sleep(0.01)

        reservation = p.admission.reservation("w-adopted")
        assert reservation is not None
        assert not reservation.holds_memory  # its memory is in the readings already
        assert reservation.gpu_uuid == GPU_UUID
        p.hive.registry.remove("w-adopted")
        await released(p, "w-adopted")
