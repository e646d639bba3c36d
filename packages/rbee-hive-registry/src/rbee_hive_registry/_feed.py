"""The change feed: what happened to which worker, delivered to any number of subscribers."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from types import TracebackType

import anyio
import attrs

from rbee_hive_registry._info import WorkerInfo


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

    The registry never waits for a subscriber. When a subscriber's buffer is full, its oldest
    events are dropped and the next thing it receives is this marker; a subscriber that needs
    the whole picture then re-reads ``WorkerRegistry.list()``.
    """

    missed: int


FeedItem = WorkerEvent | FeedLagged


class Subscription:
    """A bounded buffer of events for one subscriber; iterate it with ``async for``.

    Close it (or leave its ``with`` block) to unsubscribe; iteration then ends once the
    buffered events are read.
    """

    def __init__(self, capacity: int, on_close: Callable[[Subscription], None]) -> None:
        if capacity < 1:
            raise ValueError(f"a subscription needs room for at least 1 event, got {capacity}")
        self._capacity = capacity
        self._buffer: deque[WorkerEvent] = deque()
        self._missed = 0
        self._closed = False
        self._wakeup = anyio.Event()
        self._on_close = on_close

    def __repr__(self) -> str:
        return (
            f"<Subscription buffered={len(self._buffer)}/{self._capacity} "
            f"missed={self._missed} closed={self._closed}>"
        )

    def _deliver(self, event: WorkerEvent) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self._missed += 1
        self._buffer.append(event)
        self._wakeup.set()

    def receive_nowait(self) -> FeedItem | None:
        """The next buffered item, or None when nothing is buffered."""
        if self._missed:
            missed, self._missed = self._missed, 0
            return FeedLagged(missed)
        if self._buffer:
            return self._buffer.popleft()
        return None

    async def receive(self) -> FeedItem:
        """Wait for the next item; raises ``anyio.EndOfStream`` once closed and drained."""
        while True:
            item = self.receive_nowait()
            if item is not None:
                return item
            if self._closed:
                raise anyio.EndOfStream
            self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedItem:
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

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
