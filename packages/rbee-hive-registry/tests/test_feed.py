"""The generic feed: any item type, bounded buffers, a lag marker, never a wait."""

from __future__ import annotations

import anyio
import pytest

from rbee_hive_registry import Feed, FeedLagged

pytestmark = pytest.mark.anyio


async def test_a_feed_of_any_type_reaches_every_subscriber_in_order() -> None:
    feed: Feed[str] = Feed()
    with feed.subscribe() as one, feed.subscribe() as two:
        assert len(feed) == 2
        feed.publish("a")
        feed.publish("b")
        assert [await one.receive(), await one.receive()] == ["a", "b"]
        assert [await two.receive(), await two.receive()] == ["a", "b"]
    assert len(feed) == 0
    assert feed.published == 2


async def test_a_full_buffer_yields_the_lag_marker_then_the_newest_items() -> None:
    feed: Feed[int] = Feed(default_capacity=2)
    with feed.subscribe() as slow:
        for n in range(5):
            feed.publish(n)
        assert await slow.receive() == FeedLagged(missed=3)
        assert [await slow.receive(), await slow.receive()] == [3, 4]
        assert slow.receive_nowait() is None


async def test_publishing_never_waits_for_a_subscriber_that_does_not_read() -> None:
    feed: Feed[int] = Feed(default_capacity=1)
    with feed.subscribe(), anyio.fail_after(1):
        for n in range(10_000):
            feed.publish(n)


def test_a_feed_needs_room_for_one_item() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Feed(default_capacity=0)
