"""Per-download state with replay: any number of subscribers, late ones included.

A subscriber first receives the download's current state, then every later one; the final
state (complete or error) stays readable for ``retention`` seconds after the end. A slow
subscriber never holds the download up: its buffer keeps the newest states (progress is a
state, so skipping an intermediate one loses nothing) and never drops the final one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

import anyio
import attrs

from rbee_hive_provisioner._events import DownloadEvent, is_final
from rbee_hive_provisioner._ref import ModelRef
from rbee_hive_provisioner.exceptions import UnknownDownload


@attrs.frozen
class DownloadStatus:
    """A snapshot of one download, active or retained after its end."""

    download_id: str
    ref: ModelRef
    state: DownloadEvent
    started_at: datetime
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the download is still running."""
        return self.finished_at is None


class ProgressSubscription:
    """The events of one download for one subscriber; iterate with ``async for``.

    Iteration ends after the final event. Close it (or leave its ``with`` block) to stop
    listening earlier.
    """

    def __init__(self, current: DownloadEvent, capacity: int, on_close: Callable[[], None]):
        self._buffer: deque[DownloadEvent] = deque([current])
        self._capacity = capacity
        self._on_close = on_close
        self._done = False
        self._closed = False
        self._wakeup = anyio.Event()

    def __repr__(self) -> str:
        return f"<ProgressSubscription buffered={len(self._buffer)} done={self._done}>"

    def _deliver(self, event: DownloadEvent) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()  # the oldest is a progress state: a final one is always last
        self._buffer.append(event)
        self._wakeup.set()

    def __aiter__(self) -> ProgressSubscription:
        return self

    async def __anext__(self) -> DownloadEvent:
        while not self._buffer:
            if self._done or self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        event = self._buffer.popleft()
        if is_final(event):
            self._done = True
            self._buffer.clear()
            self.close()
        return event

    def close(self) -> None:
        """Stop listening; buffered events are dropped."""
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            self._on_close()
            self._wakeup.set()

    def __enter__(self) -> ProgressSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@attrs.define
class _Record:
    ref: ModelRef
    state: DownloadEvent
    started_at: datetime
    finished_at: datetime | None = None
    finished_clock: float | None = None
    done: anyio.Event = attrs.Factory(anyio.Event)
    subscribers: list[ProgressSubscription] = attrs.Factory(list)


class DownloadTracker:
    """The state of every download this provisioner started, and their subscribers.

    ``clock`` (monotonic seconds) decides when a final state is forgotten; tests inject one.
    """

    def __init__(
        self,
        retention: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        buffer_size: int = 16,
    ) -> None:
        if buffer_size < 2:
            raise ValueError(f"a subscriber buffer needs room for 2 events, got {buffer_size}")
        self._retention = retention
        self._clock = clock
        self._buffer_size = buffer_size
        self._records: dict[str, _Record] = {}

    def __repr__(self) -> str:
        active = sum(1 for r in self._records.values() if r.finished_at is None)
        return f"<DownloadTracker active={active} retained={len(self._records) - active}>"

    def start(self, download_id: str, ref: ModelRef, initial: DownloadEvent) -> None:
        """Register a new download in its first (non-final) state."""
        self._purge()
        if download_id in self._records:
            raise ValueError(f"download id {download_id!r} is already in use")
        self._records[download_id] = _Record(ref, initial, datetime.now(UTC))

    def publish(self, download_id: str, event: DownloadEvent) -> None:
        """Set the download's state and deliver it; a final state ends the download."""
        record = self._records[download_id]
        if record.finished_at is not None:
            return  # a download ends once; a late state after the end is ignored
        record.state = event
        for subscription in list(record.subscribers):
            subscription._deliver(event)
        if is_final(event):
            record.finished_at = datetime.now(UTC)
            record.finished_clock = self._clock()
            record.subscribers.clear()
            record.done.set()

    def _get(self, download_id: str) -> _Record:
        self._purge()
        try:
            return self._records[download_id]
        except KeyError:
            raise UnknownDownload(download_id, self._retention) from None

    def state(self, download_id: str) -> DownloadEvent:
        """The current state; raises ``UnknownDownload``."""
        return self._get(download_id).state

    def subscribe(self, download_id: str) -> ProgressSubscription:
        """A subscription that starts with the current state; raises ``UnknownDownload``."""
        record = self._get(download_id)

        def unsubscribe() -> None:
            if subscription in record.subscribers:
                record.subscribers.remove(subscription)

        subscription = ProgressSubscription(record.state, self._buffer_size, unsubscribe)
        if record.finished_at is None:
            record.subscribers.append(subscription)
        return subscription

    async def wait(self, download_id: str) -> DownloadEvent:
        """Wait for the final state and return it; raises ``UnknownDownload``."""
        record = self._get(download_id)
        await record.done.wait()
        return record.state

    def statuses(self) -> list[DownloadStatus]:
        """Every active download and every final state still retained, oldest first."""
        self._purge()
        return [
            DownloadStatus(i, r.ref, r.state, r.started_at, r.finished_at)
            for i, r in self._records.items()
        ]

    def active_count(self) -> int:
        """How many downloads are running."""
        return sum(1 for r in self._records.values() if r.finished_at is None)

    def _purge(self) -> None:
        cutoff = self._clock() - self._retention
        expired = [
            i
            for i, r in self._records.items()
            if r.finished_clock is not None and r.finished_clock <= cutoff
        ]
        for download_id in expired:
            del self._records[download_id]
