"""Typed lifecycle events, published for real fake-worker processes (issue 10.2)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import pytest

from rbee_hive_monitor import (
    BreakerOpened,
    HealthCheckFailed,
    LaunchFailed,
    LifecycleEvent,
    StopOutcome,
    WorkerCrashed,
    WorkerLaunchFailed,
    WorkerReady,
    WorkerStopped,
    rbee_engine,
)
from rbee_hive_registry import FeedLagged, Subscription, WorkerState
from rbee_hive_restart import Backoff, BreakerSettings

if TYPE_CHECKING:
    from conftest import OpenHive

pytestmark = pytest.mark.anyio

E = TypeVar("E")


async def next_of(
    feed: Subscription[LifecycleEvent],
    kind: type[E],
    where: Callable[[E], bool] = lambda _: True,
    timeout: float = 10.0,
) -> E:
    """The next event of ``kind`` (that matches ``where``)."""
    with anyio.fail_after(timeout):
        async for item in feed:
            if isinstance(item, kind) and where(item):
                return item
    raise AssertionError("the event feed ended")  # pragma: no cover


async def test_ready_crash_and_restart_are_published_with_the_worker_identity(
    open_hive: OpenHive,
) -> None:
    async with open_hive(backoff=Backoff(base=0.2, jitter=0.0)) as hive:
        with hive.supervisor.subscribe() as feed:
            info = await hive.spawn_ready()
            ready = await next_of(feed, WorkerReady)
            assert (ready.worker_id, ready.launch, ready.url) == (info.id, 1, info.url)
            assert (ready.model_ref, ready.backend, ready.engine) == (info.model_ref, "cpu", "rbee")
            assert ready.adopted is False
            assert info.pid is not None
            os.kill(info.pid, signal.SIGKILL)
            crashed = await next_of(feed, WorkerCrashed)
            assert (crashed.exit_code, crashed.restart_in, crashed.launch) == (-9, 0.2, 1)
            assert crashed.reason == "was killed by SIGKILL; restart 1 in 0.2 s"
            again = await next_of(feed, WorkerReady)
            assert again.launch == 2
            assert crashed.seq < again.seq
            assert again.at - crashed.at >= 0.2
        totals = hive.supervisor.totals()
        assert (totals["ready"], totals["spawns_ready"], totals["crashes"]) == (2, 1, 1)
        assert totals["restarts"] == 1


async def test_a_crash_loop_publishes_the_breaker_opening(open_hive: OpenHive) -> None:
    async with open_hive(
        early_exit_grace=0.0, breaker=BreakerSettings(threshold=3, window=60.0)
    ) as hive:
        with hive.supervisor.subscribe() as feed:
            info = await hive.spawn("crash_after", crash_after_s="0.05")
            opened = await next_of(feed, BreakerOpened)
            assert opened.worker_id == info.id
            assert "crash loop: 3 exits within 60 s" in opened.reason
            assert opened.launch == 3
        totals = hive.supervisor.totals()
        assert (totals["crashes"], totals["restarts"], totals["breaker_openings"]) == (3, 2, 1)


async def test_a_missing_program_is_a_launch_failure_event(
    open_hive: OpenHive, tmp_path: Path
) -> None:
    missing = rbee_engine(tmp_path / "no-such-worker", name="missing")
    async with open_hive(engines=(missing,)) as hive:
        with hive.supervisor.subscribe() as feed:
            with pytest.raises(LaunchFailed):
                await hive.supervisor.spawn(hive.spec(engine="missing"), hive.model)
            failed = await next_of(feed, WorkerLaunchFailed)
            assert (failed.code, failed.launch) == ("WORKER_BINARY_NOT_FOUND", 1)
        assert hive.supervisor.totals()["spawns_failed"] == 1


async def test_an_early_exit_is_a_launch_failure_event_although_the_record_is_gone(
    open_hive: OpenHive,
) -> None:
    async with open_hive(early_exit_grace=2.0) as hive:
        with hive.supervisor.subscribe() as feed:
            with pytest.raises(LaunchFailed):
                await hive.spawn("exit_now")
            failed = await next_of(feed, WorkerLaunchFailed)
            assert (failed.code, failed.exit_code) == ("WORKER_EXITED_EARLY", 1)
            assert len(hive.registry) == 0
        totals = hive.supervisor.totals()
        assert (totals["launch_failures"], totals["spawns_failed"], totals["crashes"]) == (1, 1, 0)


async def test_a_loading_timeout_is_a_launch_failure_event(open_hive: OpenHive) -> None:
    async with open_hive(loading_timeout=0.5) as hive:
        with hive.supervisor.subscribe() as feed:
            info = await hive.spawn("no_callback")
            failed = await next_of(feed, WorkerLaunchFailed)
            assert (failed.worker_id, failed.code) == (info.id, "WORKER_LOADING_TIMEOUT")
            assert failed.exit_code == -signal.SIGKILL


async def test_stops_publish_their_outcome(open_hive: OpenHive) -> None:
    async with open_hive(stop_timeout=1.5) as hive:
        with hive.supervisor.subscribe() as feed:
            calm = await hive.spawn_ready()
            hung = await hive.spawn_ready("hang")
            await hive.serving(calm)
            assert await hive.supervisor.stop(calm.id) is StopOutcome.GRACEFUL
            graceful = await next_of(feed, WorkerStopped)
            assert (graceful.worker_id, graceful.outcome) == (calm.id, StopOutcome.GRACEFUL)
            assert (graceful.exit_code, graceful.was_ready) == (0, True)
            assert await hive.supervisor.stop(hung.id) is StopOutcome.FORCED
            forced = await next_of(feed, WorkerStopped)
            assert (forced.worker_id, forced.outcome) == (hung.id, StopOutcome.FORCED)
            provisioning = hive.supervisor.register(hive.spec())
            await hive.supervisor.stop(provisioning.id)
            cancelled = await next_of(feed, WorkerStopped)
            assert (cancelled.outcome, cancelled.was_ready) == (
                StopOutcome.ALREADY_STOPPED,
                False,
            )
        totals = hive.supervisor.totals()
        assert (totals["stops"], totals["spawns_cancelled"]) == (3, 1)


async def test_failed_health_checks_are_published(open_hive: OpenHive) -> None:
    async with open_hive(probe_interval=0.1, probe_failure_threshold=2) as hive:
        with hive.supervisor.subscribe() as feed:
            info = await hive.spawn_ready("unhealthy")
            first = await next_of(feed, HealthCheckFailed)
            assert (first.worker_id, first.failures, first.threshold) == (info.id, 1, 2)
            assert "HTTP 500" in first.problem
            await next_of(feed, WorkerCrashed)


async def test_a_subscriber_that_lags_is_told_and_the_totals_cover_what_it_missed(
    open_hive: OpenHive,
) -> None:
    async with open_hive() as hive:
        with hive.supervisor.subscribe(capacity=1) as slow:
            first = await hive.spawn_ready()
            second = await hive.spawn_ready()
            await hive.supervisor.stop(first.id)
            await hive.supervisor.stop(second.id)
            lagged = await slow.receive()
            assert isinstance(lagged, FeedLagged)
            assert lagged.missed == 3
            last = await slow.receive()
            assert isinstance(last, WorkerStopped)
            totals = hive.supervisor.totals()
            assert totals.seq == last.seq == 4
            assert (totals["ready"], totals["stops"]) == (2, 2)
        assert hive.registry.require(first.id).state is WorkerState.STOPPED
