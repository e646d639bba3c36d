"""Telling queen-rbee that a worker is ready, the way its ``/v2/workers/ready`` expects."""

from __future__ import annotations

import logging

import aiohttp
import anyio
import attrs

from rbee_hive_http_middleware import Token
from rbee_hive_registry import WorkerEvent, WorkerInfo, WorkerRegistry, WorkerState

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


@attrs.define
class QueenNotifier:
    """Follows the registry and POSTs ``{worker_id, url, model_ref, backend}`` to
    ``<queen>/v2/workers/ready`` for each worker that becomes ready, with retries, in tasks
    of its own so the worker's callback is answered at once."""

    registry: WorkerRegistry
    settings: QueenSettings
    sent: int = 0
    failed: int = 0

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            anyio.create_task_group() as tg,
        ):
            with self.registry.subscribe() as feed:
                task_status.started()
                async for item in feed:
                    if (
                        isinstance(item, WorkerEvent)
                        and item.previous is not None
                        and item.previous.state is WorkerState.LOADING
                        and item.worker.state is WorkerState.IDLE
                    ):
                        tg.start_soon(self._notify, session, item.worker)

    async def _notify(self, session: aiohttp.ClientSession, worker: WorkerInfo) -> None:
        s = self.settings
        url = s.url.rstrip("/") + "/v2/workers/ready"
        body = {
            "worker_id": worker.id,
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
                        log.info("told the queen that worker %s is ready", worker.id)
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
            worker.id,
            problem,
        )
