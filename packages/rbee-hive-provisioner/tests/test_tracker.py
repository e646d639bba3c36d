"""The tracker: replay for late subscribers, bounded buffers, retention."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from rbee_hive_provisioner import (
    DownloadComplete,
    DownloadError,
    DownloadEvent,
    DownloadProgress,
    DownloadTracker,
    ModelRef,
    UnknownDownload,
)

pytestmark = pytest.mark.anyio

REF = ModelRef.parse("hf:org/repo:m.gguf")


def progress(done: int) -> DownloadProgress:
    return DownloadProgress(done, 100, 1.0, 1.0)


async def test_subscriber_gets_current_state_then_updates_then_ends() -> None:
    tracker = DownloadTracker()
    tracker.start("d1", REF, progress(0))
    tracker.publish("d1", progress(10))
    received: list[DownloadEvent] = []
    subscription = tracker.subscribe("d1")

    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for event in subscription:
                received.append(event)

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        tracker.publish("d1", progress(50))
        await anyio.wait_all_tasks_blocked()
        tracker.publish("d1", DownloadComplete(Path("/m.gguf")))
    assert received == [progress(10), progress(50), DownloadComplete(Path("/m.gguf"))]


async def test_any_number_of_subscribers_see_the_same_states() -> None:
    tracker = DownloadTracker()
    tracker.start("d1", REF, progress(0))
    subs = [tracker.subscribe("d1") for _ in range(5)]
    tracker.publish("d1", DownloadError("DOWNLOAD_FAILED", "boom"))
    for sub in subs:
        assert [e async for e in sub] == [progress(0), DownloadError("DOWNLOAD_FAILED", "boom")]


async def test_a_slow_subscriber_keeps_the_newest_states_and_the_final_one() -> None:
    tracker = DownloadTracker(buffer_size=3)
    tracker.start("d1", REF, progress(0))
    slow = tracker.subscribe("d1")
    for done in range(1, 100):
        tracker.publish("d1", progress(done))
    tracker.publish("d1", DownloadComplete(Path("/m.gguf")))
    assert [e async for e in slow] == [
        progress(98),
        progress(99),
        DownloadComplete(Path("/m.gguf")),
    ]


async def test_final_state_is_retained_for_the_configured_time() -> None:
    now = [0.0]
    tracker = DownloadTracker(retention=10, clock=lambda: now[0])
    tracker.start("d1", REF, progress(0))
    tracker.publish("d1", DownloadComplete(Path("/m.gguf")))
    now[0] = 9.5
    assert [e async for e in tracker.subscribe("d1")] == [DownloadComplete(Path("/m.gguf"))]
    assert await tracker.wait("d1") == DownloadComplete(Path("/m.gguf"))
    assert tracker.statuses()[0].finished_at is not None
    now[0] = 10.5
    with pytest.raises(UnknownDownload, match="progress_retention"):
        tracker.subscribe("d1")
    assert tracker.statuses() == []


async def test_nothing_follows_a_final_state() -> None:
    tracker = DownloadTracker()
    tracker.start("d1", REF, progress(0))
    tracker.publish("d1", DownloadError("X", "first"))
    tracker.publish("d1", progress(5))
    assert tracker.state("d1") == DownloadError("X", "first")


async def test_closing_a_subscription_unsubscribes() -> None:
    tracker = DownloadTracker()
    tracker.start("d1", REF, progress(0))
    with tracker.subscribe("d1") as sub:
        assert await sub.__anext__() == progress(0)
    tracker.publish("d1", progress(1))
    assert [e async for e in sub] == []


def test_unknown_id_raises_with_code() -> None:
    with pytest.raises(UnknownDownload) as info:
        DownloadTracker().subscribe("nope")
    assert info.value.code == "UNKNOWN_DOWNLOAD"
