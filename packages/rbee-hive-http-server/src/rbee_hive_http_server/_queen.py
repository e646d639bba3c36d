"""Telling queen-rbee that a worker is ready, the way its ``/v2/workers/ready`` expects."""

from __future__ import annotations

import logging
from typing import Protocol

import aiohttp
import anyio
import anyio.abc
import attrs

from rbee_hive_http_middleware import Token
from rbee_hive_monitor import LifecycleEvent, WorkerReady
from rbee_hive_registry import FeedLagged, Subscription, WorkerRegistry

log = logging.getLogger("rbee_hive.queen")


@attrs.frozen
class QueenSettings:
    """Where the queen is and how hard to try. Delays double from ``backoff_base`` up to
    ``backoff_cap``; ``attempts`` bounds the tries per worker."""

    url: str
    token: Token | None = None
    timeout: float = 5.0
    attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 8.0


class ReadyEvents(Protocol):
    """Where ready workers are announced (the ``Supervisor``)."""

    def subscribe(self, capacity: int | None = None) -> Subscription[LifecycleEvent]:
        """Follow the lifecycle events from now on."""
        ...


@attrs.frozen
class _Announcement:
    worker_id: str
    url: str
    model_ref: str
    backend: str


@attrs.define
class QueenNotifier:
    """Follows the supervisor's ``WorkerReady`` events and POSTs ``{worker_id, url, model_ref,
    backend}`` to ``<queen>/v2/workers/ready`` for each launch that becomes ready (a restarted
    worker is announced again), with retries, in tasks of its own so the worker's callback is
    answered at once.

    Each launch is announced once. When its event buffer overflows (``FeedLagged``), and when
    it starts, it resynchronises from the registry: every ready worker whose launch it has not
    announced yet is announced then, so no ready notification is dropped.
    """

    events: ReadyEvents
    registry: WorkerRegistry
    settings: QueenSettings
    capacity: int | None = None
    """The subscription's buffer (None: the feed's default)."""
    sent: int = 0
    failed: int = 0
    _announced: set[tuple[str, int]] = attrs.field(factory=set)
    """(worker id, launch) of every launch announced (or being announced)."""

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            anyio.create_task_group() as tg,
        ):
            with self.events.subscribe(self.capacity) as feed:
                self._resync(tg, session)  # workers that were ready before (adopted ones)
                task_status.started()
                async for item in feed:
                    if isinstance(item, FeedLagged):
                        log.warning(
                            "queen notifier: %d lifecycle events were dropped from a full "
                            "buffer; announcing ready workers from the registry instead",
                            item.missed,
                        )
                        self._resync(tg, session)
                    elif isinstance(item, WorkerReady):
                        worker = _Announcement(
                            item.worker_id, item.url, item.model_ref, item.backend
                        )
                        self._announce(tg, session, (item.worker_id, item.launch), worker)

    def _resync(self, tg: anyio.abc.TaskGroup, session: aiohttp.ClientSession) -> None:
        workers = self.registry.list()
        live = {w.id for w in workers}
        self._announced = {key for key in self._announced if key[0] in live}
        for w in workers:
            if w.state.is_ready:
                # A worker's launch number is its restart count plus one.
                worker = _Announcement(w.id, w.url, w.model_ref, w.backend)
                self._announce(tg, session, (w.id, w.restart_count + 1), worker)

    def _announce(
        self,
        tg: anyio.abc.TaskGroup,
        session: aiohttp.ClientSession,
        key: tuple[str, int],
        worker: _Announcement,
    ) -> None:
        if key in self._announced:
            return
        self._announced.add(key)
        tg.start_soon(self._notify, session, worker)

    async def _notify(self, session: aiohttp.ClientSession, worker: _Announcement) -> None:
        s = self.settings
        url = s.url.rstrip("/") + "/v2/workers/ready"
        body = {
            "worker_id": worker.worker_id,
            "url": worker.url,
            "model_ref": worker.model_ref,
            "backend": worker.backend,
        }
        headers = {} if s.token is None else {"Authorization": f"Bearer {s.token.reveal()}"}
        delay = s.backoff_base
        problem = ""
        for attempt in range(1, s.attempts + 1):
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        log.info("told the queen that worker %s is ready", worker.worker_id)
                        return
                    problem = f"HTTP {resp.status}"
                    if resp.status in (400, 401, 403, 404, 422):
                        break  # retrying will not change the answer
            except (aiohttp.ClientError, TimeoutError) as err:
                problem = f"{type(err).__name__}: {err}"
            if attempt < s.attempts:
                await anyio.sleep(delay)
                delay = min(delay * 2, s.backoff_cap)
        self.failed += 1
        log.warning(
            "could not tell the queen at %s that worker %s is ready (%s); the queen can still "
            "find it in GET /v1/workers/list",
            s.url,
            worker.worker_id,
            problem,
        )
