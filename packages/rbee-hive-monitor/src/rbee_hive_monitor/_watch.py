"""Watching one launch while it runs: readiness, loading timeout, probes, heartbeats, idleness.

The exit itself is not watched here: ``WorkerProcess.watch`` awaits it. This loop only decides
to kill (then the exit is handled like a crash, or as a failed load) or to ask for a stop.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import anyio
import attrs

from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._http import HttpAnswer, WorkerHttp
from rbee_hive_monitor._process import WorkerProcess
from rbee_hive_monitor._settings import SupervisorSettings
from rbee_hive_registry import WorkerRegistry, WorkerState

log = logging.getLogger("rbee_hive.monitor")


@attrs.define(eq=False)
class LaunchWatch:
    """The watcher of one launch of one worker. ``run`` returns once it has killed the process
    or asked for a stop; otherwise it runs until it is cancelled (the process exited)."""

    worker_id: str
    proc: WorkerProcess
    engine: EngineSpec
    settings: SupervisorSettings
    http: WorkerHttp
    registry: WorkerRegistry
    base_url: str
    """Where the worker is probed: its own host (loopback for a wildcard bind) and port."""
    become_ready: Callable[[], None]
    """Called when an ``http`` engine answers its ready path."""
    last_use: Callable[[], float | None]
    """anyio time of the last real use (None: never used)."""
    last_heartbeat: Callable[[], float | None]
    """anyio time of the last heartbeat (None: none yet)."""
    request_stop: Callable[[str], None]
    """Ask the supervisor to stop this worker, with a reason."""

    async def run(self) -> None:
        """Wait for readiness within ``loading_timeout``, then probe until told to stop."""
        deadline = self.proc.started + self.settings.loading_timeout
        with anyio.CancelScope(deadline=deadline) as loading:
            if self.engine.readiness == "http":
                await self._poll_ready()
            else:
                await self.proc.ready.wait()
        if loading.cancelled_caught:
            self._give_up_loading()
            return
        await self._probe()

    async def _poll_ready(self) -> None:
        url = self.base_url + self.engine.ready_path
        while not self.proc.ready.is_set():
            answer = await self.http.get(url, self.settings.probe_timeout)
            if answer.status == 200:
                self.become_ready()
                if self.proc.ready.is_set():
                    return
            await anyio.sleep(self.settings.ready_poll_interval)

    def _give_up_loading(self) -> None:
        timeout = self.settings.loading_timeout
        self.proc.kill_reason = f"not ready {timeout:g} s after launch (loading_timeout)"
        self.proc.failed_loading = True
        log.error(
            "worker %s (pid %d) is not ready %g s after its launch (loading_timeout); killing "
            "it. It will not be restarted: a model that loads this slowly would do so again. "
            "Its log: %s",
            self.worker_id,
            self.proc.pid,
            timeout,
            self.proc.log_path,
        )
        self.proc.signal_group(signal.SIGKILL)

    async def _probe(self) -> None:
        settings = self.settings
        url = self.base_url + self.engine.health_path
        failures = 0
        while True:
            await anyio.sleep(settings.probe_interval)
            info = self.registry.get(self.worker_id)
            if info is None or not info.state.is_ready or not self.proc.running:
                continue
            if info.state is WorkerState.BUSY:
                # A worker may not answer while it generates (llm-worker-rbee blocks): a busy
                # worker is neither probed nor idle.
                continue
            if self._idle_too_long():
                return
            answer = await self.http.get(url, settings.probe_timeout)
            problem = self._problem(answer)
            failures = failures + 1 if problem else 0
            self._record(failures)
            if problem is None:
                continue
            threshold = settings.probe_failure_threshold
            log.warning(
                "worker %s (pid %d): health check %d/%d failed: %s",
                self.worker_id,
                self.proc.pid,
                failures,
                threshold,
                problem,
            )
            if failures >= threshold:
                self.proc.kill_reason = f"killed after {failures} failed health checks ({problem})"
                log.error(
                    "worker %s (pid %d) failed %d health checks in a row (%s); killing its "
                    "process group, then it is handled like a crash",
                    self.worker_id,
                    self.proc.pid,
                    failures,
                    problem,
                )
                self.proc.signal_group(signal.SIGKILL)
                return

    def _problem(self, answer: HttpAnswer) -> str | None:
        if not answer.ok:
            return f"GET {self.engine.health_path}: {answer.describe()}"
        beat = self.last_heartbeat()
        stale_after = self.settings.heartbeat_stale_after
        if beat is not None and anyio.current_time() - beat > stale_after:
            age = anyio.current_time() - beat
            return f"last heartbeat {age:.0f} s ago (heartbeat_stale_after {stale_after:g} s)"
        return None

    def _idle_too_long(self) -> bool:
        limit = self.settings.idle_timeout
        used = self.last_use()
        if limit is None or used is None:
            return False
        idle = anyio.current_time() - used
        if idle < limit:
            return False
        self.request_stop(f"idle for {idle:.1f} s (idle_timeout {limit:g} s)")
        return True

    def _record(self, failures: int) -> None:
        info = self.registry.get(self.worker_id)
        if info is None or info.failed_health_checks == failures or not info.state.is_ready:
            return
        # Read and write with no await in between: the condition holds, and a state change
        # made while the probe was in flight is never undone.
        self.registry.update(
            self.worker_id, expected_revision=info.revision, failed_health_checks=failures
        )
