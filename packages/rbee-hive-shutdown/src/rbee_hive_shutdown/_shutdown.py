"""The daemon's stop: one signal drains, a second one forces."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import attrs

from rbee_hive_monitor import StopReport, Supervisor

log = logging.getLogger("rbee_hive.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DUPLICATE_WINDOW = 0.5
"""The same signal again within this many seconds is one request delivered twice."""


@attrs.frozen
class ShutdownReport:
    """How the stop went; also written as the daemon's last log lines."""

    trigger: str
    workers: StopReport
    forced_by_second_signal: bool
    duration: float

    @property
    def clean(self) -> bool:
        """Every worker ended and was reaped in time."""
        return self.workers.timed_out == 0


@attrs.define
class GracefulShutdown:
    """Owns the stop sequence: refuse new spawns, stop every worker in parallel under one
    ``deadline``, run the ``after_workers`` hooks (cancel downloads, flush the audit log),
    report, then let the HTTP server go (``server_may_stop``).

    SIGTERM and SIGINT both start it; a second signal SIGKILLs every worker's process group at
    once. ``trigger()`` starts it from code (tests, an admin path).
    """

    supervisor: Supervisor
    deadline: float = 30.0
    after_workers: Sequence[Callable[[], Awaitable[None]]] = ()
    on_report: Callable[[ShutdownReport], None] | None = None
    server_may_stop: anyio.Event = attrs.field(factory=anyio.Event)
    report: ShutdownReport | None = None
    _requested: anyio.Event = attrs.field(factory=anyio.Event, init=False)
    _trigger: str = attrs.field(default="", init=False)
    _forced: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.deadline > 0:
            raise ValueError(f"shutdown deadline must be > 0 s, got {self.deadline}")

    @property
    def stopping(self) -> bool:
        """A stop has begun."""
        return self._requested.is_set()

    def trigger(self, reason: str) -> bool:
        """Begin the stop (returns False if it had begun already)."""
        if self._requested.is_set():
            return False
        self._trigger = reason
        self.supervisor.refuse_new()
        self._requested.set()
        return True

    def force(self, reason: str) -> None:
        """The impatient path: SIGKILL every worker's process group now."""
        self._forced = True
        killed = self.supervisor.kill_all_now()
        log.warning("%s: killed the process groups of %d workers at once", reason, killed)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen for signals and carry out the stop; returns when the server may stop."""
        async with anyio.create_task_group() as tg:
            with anyio.open_signal_receiver(*SIGNALS) as signals:
                tg.start_soon(self._listen, signals)
                task_status.started()
                await self._requested.wait()
                await self._drain()
                tg.cancel_scope.cancel()

    async def _listen(self, signals: AsyncIterator[int]) -> None:
        first: tuple[int, float] | None = None
        async for signum in signals:
            name = signal.Signals(signum).name
            now = anyio.current_time()
            if self.trigger(f"{name} received"):
                first = (signum, now)
                log.info("%s received: stopping gracefully (send it again to force)", name)
            elif first is not None and first[0] == signum and now - first[1] < DUPLICATE_WINDOW:
                # One stop request delivered twice (a wrapper forwarding the signal to us
                # while it also reached our process group) is not an impatient operator.
                log.info(
                    "%s arrived twice within %g s; taken as one request", name, DUPLICATE_WINDOW
                )
            else:
                self.force(f"second {name}")

    async def _drain(self) -> None:
        begin = anyio.current_time()
        log.info(
            "shutting down (%s): no new spawns; stopping all workers within %g s",
            self._trigger,
            self.deadline,
        )
        workers = await self.supervisor.stop_all(
            self.deadline, reason=f"hive shutdown ({self._trigger})"
        )
        for hook in self.after_workers:
            try:
                with anyio.move_on_after(5, shield=True):
                    await hook()
            except Exception:
                log.exception("a shutdown step failed; carrying on with the rest")
        report = ShutdownReport(
            trigger=self._trigger,
            workers=workers,
            forced_by_second_signal=self._forced,
            duration=anyio.current_time() - begin,
        )
        self.report = report
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception:
                log.exception("could not record the shutdown report")
        # The server is about to go away, so the figures go to the log too.
        log.info(
            "SHUTDOWN COMPLETE: %d workers (graceful %d, forced %d, timed out %d, no process %d) "
            "in %.2f s; rbee_hive_shutdown_duration_seconds=%.3f",
            workers.total,
            workers.graceful,
            workers.forced,
            workers.timed_out,
            workers.already_stopped,
            report.duration,
            report.duration,
        )
        if workers.timed_out:
            log.error("%d workers could not be reaped before the deadline", workers.timed_out)
        self.server_may_stop.set()
