"""The metrics follower counts lifecycle events, and resyncs from totals when it lags."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, cast

import anyio
import attrs
import pytest

from rbee_hive_cli._wiring import MetricsFollower
from rbee_hive_metrics import HiveMetrics
from rbee_hive_monitor import (
    BreakerOpened,
    LifecycleEvent,
    LifecycleTotals,
    StopOutcome,
    WorkerCrashed,
    WorkerLaunchFailed,
    WorkerReady,
    WorkerStopped,
    counted_as,
)
from rbee_hive_provisioner import Provisioner
from rbee_hive_registry import Feed, Subscription

pytestmark = pytest.mark.anyio

STAMP: dict[str, Any] = {
    "worker_id": "worker-a",
    "model_ref": "hf:a/b",
    "backend": "cpu",
    "device": 0,
    "engine": "rbee",
    "at": 0.0,
}


class Source:
    """A supervisor's event side: a feed and running totals, as ``Supervisor`` keeps them."""

    def __init__(self) -> None:
        self.feed: Feed[LifecycleEvent] = Feed()
        self.seq = 0
        self.counts: Counter[str] = Counter()

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        return self.feed.subscribe(capacity)

    def totals(self) -> LifecycleTotals:
        return LifecycleTotals(seq=self.seq, counts=self.counts)

    def publish(self, event: LifecycleEvent) -> None:
        self.seq += 1
        event = attrs.evolve(event, seq=self.seq)
        self.counts.update(counted_as(event))
        self.feed.publish(event)


@attrs.define
class Stats:
    downloads_completed: int = 0
    downloads_failed: int = 0
    downloads_cancelled: int = 0
    bytes_downloaded: int = 0


class NoDownloads:
    def stats(self) -> Stats:
        return Stats()


def crash_loop() -> list[LifecycleEvent]:
    """What a worker whose spawn becomes ready, then crashes three times, publishes; plus a
    second spawn that exits within the grace and a third stopped while loading."""
    return [
        WorkerReady(**STAMP, launch=1, url="http://h:1"),
        WorkerCrashed(**STAMP, launch=1, exit_code=1, reason="x", restart_in=0.1),
        WorkerReady(**STAMP, launch=2, url="http://h:1"),
        WorkerCrashed(**STAMP, launch=2, exit_code=1, reason="x", restart_in=0.2),
        WorkerCrashed(**STAMP, launch=3, exit_code=1, reason="x", restart_in=None),
        BreakerOpened(**STAMP, launch=3, reason="crash loop", closes_in=60.0),
        WorkerLaunchFailed(**STAMP, launch=1, code="WORKER_EXITED_EARLY", reason="x"),
        WorkerStopped(
            **STAMP,
            launch=1,
            outcome=StopOutcome.GRACEFUL,
            reason="stopped",
            exit_code=0,
            was_ready=False,
        ),
    ]


def counter(metrics: HiveMetrics, name: str, labels: str = "") -> float:
    text = metrics.render(None)[0].decode()
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


EXPECTED = {
    ("rbee_hive_worker_spawns_total", '{outcome="ready"}'): 1,
    ("rbee_hive_worker_spawns_total", '{outcome="failed"}'): 1,
    ("rbee_hive_worker_spawns_total", '{outcome="cancelled"}'): 1,
    ("rbee_hive_worker_crashes_total", ""): 3,
    ("rbee_hive_worker_restarts_total", ""): 2,
    ("rbee_hive_crash_loop_breaker_openings_total", ""): 1,
}


async def follow(source: Source, capacity: int | None, publish_all: bool) -> HiveMetrics:
    metrics = HiveMetrics()
    follower = MetricsFollower(source, metrics, cast(Provisioner, NoDownloads()), capacity=capacity)
    async with anyio.create_task_group() as tg:
        await tg.start(follower.run)
        for event in crash_loop():
            source.publish(event)
            if not publish_all:
                await anyio.sleep(0)  # the follower keeps up
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    return metrics


@pytest.mark.parametrize(
    ("capacity", "burst"),
    [(None, False), (1, True), (2, True)],
    ids=["keeps-up", "lags-capacity-1", "lags-capacity-2"],
)
async def test_the_counters_match_what_happened_even_when_the_follower_lags(
    capacity: int | None, burst: bool
) -> None:
    metrics = await follow(Source(), capacity, publish_all=burst)
    seen = {key: counter(metrics, *key) for key in EXPECTED}
    assert seen == EXPECTED


async def test_events_before_the_subscription_are_counted_once() -> None:
    source = Source()
    source.publish(WorkerReady(**STAMP, launch=1, url="u", adopted=True))
    source.publish(WorkerReady(**STAMP, launch=1, url="u"))
    metrics = HiveMetrics()
    follower = MetricsFollower(source, metrics, cast(Provisioner, NoDownloads()))
    async with anyio.create_task_group() as tg:
        await tg.start(follower.run)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    # The adopted worker is not a spawn of this hive; the other one is, once.
    assert counter(metrics, "rbee_hive_worker_spawns_total", '{outcome="ready"}') == 1
