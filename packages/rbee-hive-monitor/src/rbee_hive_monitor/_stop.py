"""Stopping one worker process: HTTP shutdown, graceful signal, SIGKILL, always reaped."""

from __future__ import annotations

import enum
import logging
import signal
from collections.abc import Mapping

import anyio
import attrs

from rbee_hive_monitor._engine import EngineSpec
from rbee_hive_monitor._handle import ProcessHandle
from rbee_hive_monitor._http import WorkerHttp
from rbee_hive_monitor._process import describe_exit

log = logging.getLogger("rbee_hive.monitor")


class StopOutcome(enum.Enum):
    """How a stop ended."""

    GRACEFUL = "graceful"
    """The process exited after the HTTP shutdown request or the graceful signal."""
    FORCED = "forced"
    """The process had to be SIGKILLed."""
    TIMED_OUT = "timed_out"
    """The process could not be reaped in time, even after SIGKILL."""
    ALREADY_STOPPED = "already_stopped"
    """No process was running (provisioning, waiting for a restart, or already ended)."""


@attrs.frozen(kw_only=True)
class StopReport:
    """What ``stop_all`` did: how many workers ended which way, and how long it took."""

    total: int
    graceful: int
    forced: int
    timed_out: int
    already_stopped: int
    duration: float
    """Seconds from the call to the last worker handled."""
    outcomes: Mapping[str, StopOutcome] = attrs.field(factory=dict, eq=False)
    """Each worker's outcome, by id."""

    @classmethod
    def of(cls, outcomes: Mapping[str, StopOutcome], duration: float) -> StopReport:
        """Count ``outcomes``."""
        values = list(outcomes.values())
        return cls(
            total=len(values),
            graceful=values.count(StopOutcome.GRACEFUL),
            forced=values.count(StopOutcome.FORCED),
            timed_out=values.count(StopOutcome.TIMED_OUT),
            already_stopped=values.count(StopOutcome.ALREADY_STOPPED),
            duration=duration,
            outcomes=dict(outcomes),
        )


async def escalate(
    worker_id: str,
    proc: ProcessHandle,
    *,
    engine: EngineSpec,
    http: WorkerHttp,
    base_url: str,
    http_timeout: float,
    kill_after: float,
    give_up_after: float,
) -> StopOutcome:
    """Stop ``proc``: the engine's HTTP shutdown if it has one, then its graceful signal to the
    process group, then SIGKILL to the group ``kill_after`` seconds after the start; wait for
    the reap until ``give_up_after``. Relies on ``proc.watch`` running to see the exit (whose
    code is unknown, None, for a process that is not the hive's child)."""
    start = anyio.current_time()

    def elapsed() -> float:
        return anyio.current_time() - start

    if engine.shutdown_path is not None and proc.running:
        budget = min(http_timeout, kill_after)
        with anyio.move_on_after(budget):
            answer = await http.post(base_url + engine.shutdown_path, budget)
            if answer.ok:
                await proc.exited.wait()
            else:
                log.info(
                    "worker %s: shutdown request to %s failed (%s); sending %s",
                    worker_id,
                    engine.shutdown_path,
                    answer.describe(),
                    signal.Signals(engine.graceful_signal).name,
                )
    if proc.running:
        proc.graceful_signal_sent = True
        proc.signal_group(engine.graceful_signal)
        with anyio.move_on_after(max(0.0, kill_after - elapsed())):
            await proc.exited.wait()
    if proc.running:
        log.warning(
            "worker %s (pid %d) did not exit %.1f s after %s; sending SIGKILL to its process group",
            worker_id,
            proc.pid,
            elapsed(),
            signal.Signals(engine.graceful_signal).name,
        )
        proc.signal_group(signal.SIGKILL)
        with anyio.move_on_after(max(0.0, give_up_after - elapsed())):
            await proc.exited.wait()
    if proc.running:
        log.error(
            "worker %s (pid %d) was not reaped %.1f s after SIGKILL; it may be stuck in the "
            "kernel (D state); check `ps -o pid,stat,wchan -p %d`",
            worker_id,
            proc.pid,
            elapsed(),
            proc.pid,
        )
        return StopOutcome.TIMED_OUT
    outcome = StopOutcome.FORCED if proc.sigkill_sent else StopOutcome.GRACEFUL
    log.info(
        "worker %s (pid %d) %s, %s, %.2f s after the stop began",
        worker_id,
        proc.pid,
        describe_exit(proc.returncode),
        outcome.value,
        elapsed(),
    )
    return outcome
