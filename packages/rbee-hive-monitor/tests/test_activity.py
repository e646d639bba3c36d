"""The idle timeout measures real use, from the worker's own activity source (issue 9.5)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

from rbee_hive_monitor import (
    ACTIVITY_SOURCES,
    EngineSpec,
    HttpAnswer,
    InvalidEngine,
    engine_from_config,
    openai_engine,
    rbee_engine,
)
from rbee_hive_monitor._watch import parse_activity
from rbee_hive_registry import WorkerState

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = pytest.mark.anyio


FAKE_WORKER = Path(__file__).with_name("fake_worker.py")


def engine_with(activity: str) -> EngineSpec:
    """The fake worker as an engine whose activity comes from ``activity``."""
    engine = rbee_engine(FAKE_WORKER, launcher=(sys.executable, "-S"))
    (source,) = [known for known in ACTIVITY_SOURCES if known == activity]
    return attrs.evolve(engine, activity=source)


def idle_for(last_activity: datetime) -> float:
    return (datetime.now(UTC) - last_activity).total_seconds()


@pytest.mark.parametrize("source", ["slots", "metrics"])
async def test_a_worker_that_reports_busy_is_not_stopped_by_the_idle_timeout(
    open_hive: OpenHive, tmp_path: Path, source: str
) -> None:
    busy_file = tmp_path / "busy"
    busy_file.touch()
    async with open_hive(
        engines=(engine_with(source),), probe_interval=0.1, idle_timeout=0.4
    ) as hive:
        info = await hive.spawn_ready(busy_file=str(busy_file))
        busy = await hive.wait_state(info.id, WorkerState.BUSY)
        assert busy.last_activity > info.last_activity
        with anyio.move_on_after(1.2):
            await hive.wait_state(info.id, WorkerState.STOPPING, WorkerState.STOPPED)
            pytest.fail("a busy worker was stopped for idleness")
        assert hive.registry.require(info.id).state is WorkerState.BUSY
        busy_file.unlink()  # the request ends
        idle = await hive.wait_state(info.id, WorkerState.IDLE)
        await hive.wait_state(info.id, WorkerState.STOPPING)
        # Idle time counts from the end of the last request, not from the spawn.
        assert idle_for(idle.last_activity) >= 0.4
        stopped = await hive.wait_state(info.id, WorkerState.STOPPED)
        assert stopped.reason is not None
        assert "idle_timeout" in stopped.reason


async def test_an_idle_worker_is_stopped_at_the_idle_timeout(open_hive: OpenHive) -> None:
    async with open_hive(
        engines=(engine_with("slots"),), probe_interval=0.1, idle_timeout=0.4
    ) as hive:
        info = await hive.spawn_ready()
        stopped = await hive.wait_state(info.id, WorkerState.STOPPED)
        assert stopped.reason is not None
        assert "idle_timeout" in stopped.reason
        # Probes never count as use: last_activity is still the moment it became ready.
        assert stopped.last_activity == info.last_activity
        assert stopped.exit_code == 0


async def test_an_engine_without_an_activity_source_is_never_stopped_for_idleness(
    open_hive: OpenHive, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rbee_hive.monitor")
    async with open_hive(probe_interval=0.1, idle_timeout=0.3) as hive:
        assert "idle_timeout 0.3 s does not apply to workers of engine(s) rbee" in caplog.text
        info = await hive.spawn_ready()
        with anyio.move_on_after(1.0):
            await hive.wait_state(info.id, WorkerState.STOPPING, WorkerState.STOPPED)
            pytest.fail("a worker whose use cannot be seen was stopped for idleness")


async def test_a_heartbeat_that_carries_the_state_drives_busy_and_idle(
    open_hive: OpenHive,
) -> None:
    async with open_hive(
        engines=(engine_with("heartbeat"),), probe_interval=0.1, idle_timeout=0.4
    ) as hive:
        info = await hive.spawn_ready()
        busy = hive.supervisor.record_heartbeat(info.id, busy=True)
        assert busy.state is WorkerState.BUSY
        with anyio.move_on_after(0.8):
            await hive.wait_state(info.id, WorkerState.STOPPING, WorkerState.STOPPED)
            pytest.fail("a worker whose heartbeat says busy was stopped for idleness")
        idle = hive.supervisor.record_heartbeat(info.id, busy=False)
        assert idle.state is WorkerState.IDLE
        await hive.wait_state(info.id, WorkerState.STOPPING)
        assert idle_for(idle.last_activity) >= 0.4


async def test_a_busy_report_for_an_engine_without_heartbeat_activity_is_ignored(
    open_hive: OpenHive,
) -> None:
    async with open_hive() as hive:
        info = await hive.spawn_ready()
        assert hive.supervisor.record_heartbeat(info.id, busy=True).state is WorkerState.IDLE


def test_activity_answers_are_read_the_way_llama_server_writes_them() -> None:
    slots, metrics = engine_with("slots"), engine_with("metrics")
    assert parse_activity(slots, HttpAnswer(200, body=b'[{"id":0,"is_processing":true}]'))
    assert not parse_activity(slots, HttpAnswer(200, body=b'[{"id":0,"is_processing":false}]'))
    assert parse_activity(slots, HttpAnswer(200, body=b'[{"id":0,"state":1}]'))
    assert parse_activity(slots, HttpAnswer(200, body=b"not json")) is None
    assert parse_activity(slots, HttpAnswer(501, body=b"[]")) is None
    text = b"# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
    assert parse_activity(metrics, HttpAnswer(200, body=text))
    assert not parse_activity(metrics, HttpAnswer(200, body=b"llamacpp:requests_processing 0"))
    assert parse_activity(metrics, HttpAnswer(200, body=b"other 1")) is None


def test_engines_say_where_their_activity_comes_from() -> None:
    assert rbee_engine("/bin/worker").activity == "none"
    assert openai_engine().activity == "none"
    assert openai_engine(activity="slots").activity_probe_path == "/slots"
    custom = engine_from_config(
        "llama-server",
        {"argv": ["llama-server", "--port", "{port}"], "activity": "metrics"},
    )
    assert custom.activity_probe_path == "/metrics"
    with pytest.raises(InvalidEngine, match="key 'activity' must be one of"):
        engine_from_config("x", {"argv": ["x"], "activity": "cpu"})
