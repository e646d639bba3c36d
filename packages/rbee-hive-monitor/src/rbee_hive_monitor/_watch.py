"""Watching one launch while it runs: readiness, loading timeout, activity, probes, idleness.

The exit itself is not watched here (the driver awaits it), and nothing here decides: this
loop measures and reports to its ``WatchOwner`` (the worker's driver), whose lifecycle core
decides to mark it ready, kill it, record activity or stop it for idleness.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

import anyio
import attrs

from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._handle import ProcessHandle
from rbee_hive_monitor._http import HttpAnswer, WorkerHttp
from rbee_hive_monitor._settings import SupervisorSettings
from rbee_hive_registry import WorkerRegistry

log = logging.getLogger("rbee_hive.monitor")

_REQUESTS_PROCESSING = "llamacpp:requests_processing"


class WatchOwner(Protocol):
    """What a watch reports to; every method is synchronous and never blocks."""

    def become_ready(self, launch: int) -> None:
        """The ready probe answered 200 for ``launch``."""
        ...

    def is_serving(self, launch: int) -> bool:
        """Whether ``launch`` is the current one, running and ready."""
        ...

    def is_busy(self) -> bool:
        """Whether the worker is in use, as its activity source last said."""
        ...

    def report_activity(self, busy: bool) -> None:
        """The activity probe says the worker is busy, or idle."""
        ...

    def idle_check(self) -> bool:
        """Stop the worker if it is idle past the idle timeout; True when a stop was asked."""
        ...

    def kill(self, launch: int, reason: str, *, loading: bool) -> None:
        """Kill ``launch`` (its exit is then handled as a crash, or as a failed load)."""
        ...

    def last_heartbeat_at(self) -> float | None:
        """anyio time of the last heartbeat (None: none yet)."""
        ...

    def health_failed(self, failures: int, threshold: int, problem: str) -> None:
        """A health probe failed, ``failures`` in a row."""
        ...


def parse_activity(engine: EngineSpec, answer: HttpAnswer) -> bool | None:
    """Busy (True), idle (False), or unknown (None) from an activity probe's answer.

    ``slots``: llama-server's ``GET /slots`` list; busy while a slot has ``is_processing``
    true (older builds: ``state`` != 0). ``metrics``: busy while
    ``llamacpp:requests_processing`` is above 0.
    """
    if answer.status != 200:
        return None
    text = answer.body.decode("utf-8", errors="replace")
    if engine.activity == "slots":
        try:
            slots = json.loads(text)
        except ValueError:
            return None
        if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
            return None
        return any(bool(s.get("is_processing")) or s.get("state", 0) != 0 for s in slots)
    if engine.activity == "metrics":
        for line in text.splitlines():
            if line.startswith(_REQUESTS_PROCESSING):
                try:
                    return float(line.rsplit(maxsplit=1)[-1]) > 0
                except ValueError:
                    return None
        return None
    return None


@attrs.define(eq=False)
class LaunchWatch:
    """The watcher of one launch of one worker. ``run`` returns once it has killed the process
    or asked for a stop; otherwise it runs until it is cancelled (the process exited, or a stop
    began)."""

    worker_id: str
    launch: int
    proc: ProcessHandle
    engine: EngineSpec
    settings: SupervisorSettings
    http: WorkerHttp
    registry: WorkerRegistry
    base_url: str
    """Where the worker is probed: its own host (loopback for a wildcard bind) and port."""
    settled: anyio.Event
    """Set when this launch became ready or exited."""
    owner: WatchOwner

    async def run(self) -> None:
        """Wait for readiness within ``loading_timeout``, then probe until told to stop."""
        deadline = self.proc.started + self.settings.loading_timeout
        with anyio.CancelScope(deadline=deadline) as loading:
            if self.engine.readiness == "http":
                await self._poll_ready()
            else:
                await self.settled.wait()
        if loading.cancelled_caught:
            self._give_up_loading()
            return
        await self._probe()

    async def _poll_ready(self) -> None:
        url = self.base_url + self.engine.ready_path
        while not self.owner.is_serving(self.launch):
            answer = await self.http.get(url, self.settings.probe_timeout)
            if answer.status == 200:
                self.owner.become_ready(self.launch)
                if self.owner.is_serving(self.launch):
                    return
            await anyio.sleep(self.settings.ready_poll_interval)

    def _give_up_loading(self) -> None:
        timeout = self.settings.loading_timeout
        log.error(
            "worker %s (pid %d) is not ready %g s after its launch (loading_timeout); killing "
            "it. It will not be restarted: a model that loads this slowly would do so again. "
            "Its log: %s",
            self.worker_id,
            self.proc.pid,
            timeout,
            self.proc.log_path,
        )
        self.owner.kill(
            self.launch, f"not ready {timeout:g} s after launch (loading_timeout)", loading=True
        )

    async def _probe(self) -> None:
        settings = self.settings
        url = self.base_url + self.engine.health_path
        activity_path = self.engine.activity_probe_path
        idle_applies = settings.idle_timeout is not None and self.engine.activity != "none"
        failures = 0
        while True:
            await anyio.sleep(settings.probe_interval)
            if not self.owner.is_serving(self.launch) or not self.proc.running:
                continue
            activity_known = True
            if activity_path is not None:
                answer = await self.http.get(self.base_url + activity_path, settings.probe_timeout)
                busy = parse_activity(self.engine, answer)
                activity_known = busy is not None
                if busy is not None:
                    self.owner.report_activity(busy)
            if self.owner.is_busy():
                # A worker may not answer while it generates (llm-worker-rbee blocks): a busy
                # worker is neither probed nor idle.
                continue
            if idle_applies and activity_known and self.owner.idle_check():
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
            self.owner.health_failed(failures, threshold, problem)
            if failures >= threshold:
                log.error(
                    "worker %s (pid %d) failed %d health checks in a row (%s); killing its "
                    "process group, then it is handled like a crash",
                    self.worker_id,
                    self.proc.pid,
                    failures,
                    problem,
                )
                self.owner.kill(
                    self.launch,
                    f"killed after {failures} failed health checks ({problem})",
                    loading=False,
                )
                return

    def _problem(self, answer: HttpAnswer) -> str | None:
        if not answer.ok:
            return f"GET {self.engine.health_path}: {answer.describe()}"
        beat = self.owner.last_heartbeat_at()
        stale_after = self.settings.heartbeat_stale_after
        if beat is not None and anyio.current_time() - beat > stale_after:
            age = anyio.current_time() - beat
            return f"last heartbeat {age:.0f} s ago (heartbeat_stale_after {stale_after:g} s)"
        return None

    def _record(self, failures: int) -> None:
        info = self.registry.get(self.worker_id)
        if info is None or info.failed_health_checks == failures or not info.state.is_ready:
            return
        # Read and write with no await in between: the condition holds, and a state change
        # made while the probe was in flight is never undone.
        self.registry.update(
            self.worker_id, expected_revision=info.revision, failed_health_checks=failures
        )
