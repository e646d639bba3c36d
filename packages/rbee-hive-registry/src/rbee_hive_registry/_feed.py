"""The change feed: what happened to which worker, delivered to any number of subscribers.

``Feed[T]`` is the machinery (bounded per-subscriber buffers, a ``FeedLagged`` marker in place
of what a slow subscriber missed); the registry publishes ``WorkerEvent`` on one, and other
rooms (the supervisor's lifecycle events) reuse it for their own item types.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import anyio
import attrs

from rbee_hive_registry._info import WorkerInfo

T = TypeVar("T")


class ChangeKind(enum.Enum):
    """What happened to a worker."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@attrs.frozen
class WorkerEvent:
    """One change. ``worker`` is the record after the change (for REMOVED: the last record)."""

    kind: ChangeKind
    worker: WorkerInfo
    previous: WorkerInfo | None = None


@attrs.frozen
class FeedLagged:
    """Delivered in place of ``missed`` events that a slow subscriber's full buffer dropped.

    A feed never waits for a subscriber. When a subscriber's buffer is full, its oldest
    events are dropped and the next thing it receives is this marker; a subscriber that needs
    the whole picture then re-reads a snapshot (for the registry: ``WorkerRegistry.list()``).
    """

    missed: int


FeedItem = WorkerEvent | FeedLagged
"""What a subscription to the registry's feed yields."""


class Subscription(Generic[T]):
    """A bounded buffer of items for one subscriber; iterate it with ``async for``.

    It yields the published items, or a ``FeedLagged`` in place of those its full buffer
    dropped. Close it (or leave its ``with`` block) to unsubscribe; iteration then ends once
    the buffered items are read. The registry's feed is a ``Subscription[WorkerEvent]``.
    """

    def __init__(self, capacity: int, on_close: Callable[[Subscription[T]], None]) -> None:
        if capacity < 1:
            raise ValueError(f"a subscription needs room for at least 1 event, got {capacity}")
        self._capacity = capacity
        self._buffer: deque[T] = deque()
        self._missed = 0
        self._closed = False
        self._wakeup = anyio.Event()
        self._on_close = on_close

    def __repr__(self) -> str:
        return (
            f"<Subscription buffered={len(self._buffer)}/{self._capacity} "
            f"missed={self._missed} closed={self._closed}>"
        )

    def _deliver(self, event: T) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self._missed += 1
        self._buffer.append(event)
        self._wakeup.set()

    def receive_nowait(self) -> T | FeedLagged | None:
        """The next buffered item, or None when nothing is buffered."""
        if self._missed:
            missed, self._missed = self._missed, 0
            return FeedLagged(missed)
        if self._buffer:
            return self._buffer.popleft()
        return None

    async def receive(self) -> T | FeedLagged:
        """Wait for the next item; raises ``anyio.EndOfStream`` once closed and drained."""
        while True:
            item = self.receive_nowait()
            if item is not None:
                return item
            if self._closed:
                raise anyio.EndOfStream
            self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T | FeedLagged:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Unsubscribe; a waiting reader wakes up and iteration ends after the buffer."""
        if not self._closed:
            self._closed = True
            self._on_close(self)
            self._wakeup.set()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Feed(Generic[T]):
    """Publishes items of type ``T`` to any number of subscribers without ever waiting.

    Each subscriber gets a bounded buffer (``capacity`` items, ``default_capacity`` unless
    given); a full buffer drops its oldest items and delivers a ``FeedLagged`` in their place,
    after which that subscriber should resynchronise from a snapshot. Use it from one event
    loop; ``publish`` is synchronous.
    """

    def __init__(self, default_capacity: int = 1024) -> None:
        if default_capacity < 1:
            raise ValueError(f"a feed needs a capacity of at least 1, got {default_capacity}")
        self._default_capacity = default_capacity
        self._subscribers: set[Subscription[T]] = set()
        self._published = 0

    def __repr__(self) -> str:
        return f"<Feed subscribers={len(self._subscribers)} published={self._published}>"

    def __len__(self) -> int:
        """How many subscribers there are."""
        return len(self._subscribers)

    @property
    def published(self) -> int:
        """How many items were published so far."""
        return self._published

    def subscribe(self, capacity: int | None = None) -> Subscription[T]:
        """Follow every item published from now on."""
        sub: Subscription[T] = Subscription(
            capacity or self._default_capacity, self._subscribers.discard
        )
        self._subscribers.add(sub)
        return sub

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscriber; never waits, never raises for a slow one."""
        self._published += 1
        for sub in self._subscribers:
            sub._deliver(item)
