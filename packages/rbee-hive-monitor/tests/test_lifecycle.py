"""The pure lifecycle core: every decision about a worker, tested without a process."""

from __future__ import annotations

import signal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbee_hive_monitor import (
    BreakerOpened,
    StopOutcome,
    WorkerCrashed,
    WorkerLaunchFailed,
    WorkerReady,
    WorkerStopped,
)
from rbee_hive_monitor import _lifecycle as lc
from rbee_hive_registry import WorkerState
from rbee_hive_restart import GiveUp, Restart, StayDown

P = lc.Phase
ID = lc.Identity(worker_id="worker-a", model_ref="hf:a/b", backend="cpu", device=0, engine="rbee")


def core(**fields: object) -> lc.Core:
    return attrs.evolve(lc.Core(identity=ID), **fields)  # type: ignore[arg-type]


def running(**fields: object) -> lc.Core:
    return core(**{"phase": P.RUNNING, "launch": 1, **fields})


def serving(**fields: object) -> lc.Core:
    return running(**{"ready": True, "ever_ready": True, "last_use": 0.0, **fields})


def kinds(actions: list[lc.Action]) -> list[type]:
    return [type(a) for a in actions]


def events(actions: list[lc.Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, lc.Emit)]


def ends(actions: list[lc.Action]) -> list[lc.End]:
    return [a for a in actions if isinstance(a, lc.End)]


# ------------------------------------------------------------------ table: (core, input) -> phase

TABLE = [
    # start and launch
    (core(), lc.Start(), P.LAUNCHING, [lc.Launch]),
    (running(), lc.Start(), P.RUNNING, [lc.Refuse]),
    (core(phase=P.LAUNCHING, launch=1), lc.Launched(1), P.RUNNING, [lc.Watch]),
    (core(phase=P.STOPPING, launch=1), lc.Launched(1), P.STOPPING, []),
    (core(phase=P.LAUNCHING, launch=2), lc.Launched(1), P.LAUNCHING, []),
    (
        core(phase=P.LAUNCHING, launch=1, in_grace=True),
        lc.LaunchError(1, "WORKER_BINARY_NOT_FOUND", "no such program"),
        P.ENDED,
        [lc.Discard, lc.Emit],
    ),
    (
        core(phase=P.LAUNCHING, launch=2, last_exit="exited with code 1"),
        lc.LaunchError(2, "NO_FREE_PORT", "no free port"),
        P.ENDED,
        [lc.End, lc.Emit],
    ),
    (core(), lc.ProvisionFailed("download failed"), P.ENDED, [lc.End, lc.Emit]),
    (running(), lc.ProvisionFailed("late"), P.RUNNING, [lc.Refuse]),
    # readiness
    (running(), lc.BecameReady(1, True, "http://h:1"), P.RUNNING, [lc.SetReady, lc.Emit]),
    (running(), lc.BecameReady(1, False, "http://h:1"), P.RUNNING, [lc.Refuse]),
    (running(), lc.BecameReady(0, True, "http://h:1"), P.RUNNING, [lc.Refuse]),
    (serving(), lc.BecameReady(1, True, "http://h:1"), P.RUNNING, [lc.Refuse]),
    (core(phase=P.BACKOFF, launch=1), lc.BecameReady(1, True, "u"), P.BACKOFF, [lc.Refuse]),
    # exits
    (running(in_grace=True), lc.Exited(1, 1), P.ENDED, [lc.FailStart, lc.Emit]),
    (
        running(kill_reason="not ready", failed_loading=True),
        lc.Exited(1, -9),
        P.ENDED,
        [lc.End, lc.Emit],
    ),
    (serving(closed=True), lc.Exited(1, -9), P.ENDED, [lc.End, lc.Emit]),
    (serving(), lc.Exited(1, -9), P.EXITED, [lc.Decide]),
    (serving(), lc.Exited(0, -9), P.RUNNING, []),
    (core(phase=P.STOPPING, launch=1), lc.Exited(1, 0), P.STOPPING, []),
    (core(phase=P.ENDED, launch=1), lc.Exited(1, 0), P.ENDED, []),
    # restart decisions
    (
        core(phase=P.EXITED, launch=1, last_exit="x", exit_code=1),
        lc.Decided(Restart(delay=0.5, attempt=1)),
        P.BACKOFF,
        [lc.ScheduleRestart, lc.Emit],
    ),
    (
        core(phase=P.EXITED, launch=3, last_exit="x", exit_code=1),
        lc.Decided(GiveUp(reason="crash loop", exits_in_window=3, closes_at=9.0), 9.0),
        P.ENDED,
        [lc.End, lc.Emit, lc.Emit],
    ),
    (
        core(phase=P.EXITED, launch=1, last_exit="x", exit_code=0),
        lc.Decided(StayDown(reason="policy never")),
        P.ENDED,
        [lc.End, lc.Emit],
    ),
    (core(phase=P.BACKOFF, launch=1), lc.BackoffOver(), P.LAUNCHING, [lc.Launch]),
    (core(phase=P.BACKOFF, launch=1, closed=True), lc.BackoffOver(), P.ENDED, [lc.End, lc.Emit]),
    (core(phase=P.ENDED), lc.BackoffOver(), P.ENDED, []),
    (core(phase=P.BACKOFF, launch=1), lc.Close(), P.BACKOFF, [lc.CancelBackoff]),
    (serving(), lc.Close(), P.RUNNING, []),
    # stops
    (
        core(),
        lc.StopRequested("DELETE"),
        P.ENDED,
        [lc.MarkStopping, lc.End, lc.Emit, lc.Answer],
    ),
    (
        core(phase=P.BACKOFF, launch=1),
        lc.StopRequested("DELETE"),
        P.ENDED,
        [lc.MarkStopping, lc.CancelBackoff, lc.End, lc.Emit, lc.Answer],
    ),
    (
        serving(),
        lc.StopRequested("DELETE"),
        P.STOPPING,
        [lc.MarkStopping, lc.CancelWatch, lc.Escalate],
    ),
    (
        core(phase=P.LAUNCHING, launch=1),
        lc.StopRequested("DELETE"),
        P.STOPPING,
        [lc.MarkStopping, lc.Escalate],
    ),
    (core(phase=P.STOPPING, launch=1), lc.StopRequested("again"), P.STOPPING, [lc.JoinStop]),
    (core(phase=P.ENDED), lc.StopRequested("again"), P.ENDED, [lc.Answer]),
    (
        core(phase=P.STOPPING, launch=1, stop_reason="DELETE"),
        lc.StopFinished(StopOutcome.GRACEFUL, 0),
        P.ENDED,
        [lc.End, lc.Emit],
    ),
    (serving(), lc.HiveGone(-9), P.ENDED, [lc.End, lc.Emit]),
    (core(phase=P.ENDED), lc.HiveGone(-9), P.ENDED, []),
    # use and idleness
    (serving(), lc.Used(True), P.RUNNING, [lc.RecordUse]),
    (running(), lc.Used(True), P.RUNNING, [lc.Refuse]),
    (serving(), lc.Activity(False), P.RUNNING, []),
    (serving(), lc.Activity(True), P.RUNNING, [lc.RecordUse]),
    (serving(busy=True), lc.Activity(False), P.RUNNING, [lc.RecordUse]),
    (serving(), lc.IdleCheck(5.0), P.RUNNING, [lc.RequestStop]),
    (serving(busy=True), lc.IdleCheck(5.0), P.RUNNING, []),
    (running(), lc.IdleCheck(5.0), P.RUNNING, []),
    # kills by the watch
    (running(), lc.Kill(1, "loading timeout", loading=True), P.RUNNING, [lc.SignalKill]),
    (running(kill_reason="first"), lc.Kill(1, "second"), P.RUNNING, []),
    (running(), lc.Kill(2, "stale launch"), P.RUNNING, []),
]


@pytest.mark.parametrize(
    ("before", "event", "phase", "actions"),
    TABLE,
    ids=[f"{row[0].phase.value}-{type(row[1]).__name__}-{i}" for i, row in enumerate(TABLE)],
)
def test_transition_table(
    before: lc.Core, event: lc.Input, phase: lc.Phase, actions: list[type]
) -> None:
    after, done = lc.step(before, event, now=10.0)
    assert after.phase is phase
    assert kinds(done) == actions


# ------------------------------------------------------------------ what the actions say


def test_a_crash_with_a_restart_ahead_says_so_in_the_reason_and_the_event() -> None:
    after, actions = lc.step(serving(), lc.Exited(1, -signal.SIGKILL), now=3.0)
    after, actions = lc.step(after, lc.Decided(Restart(delay=0.3, attempt=1)), now=3.0)
    (schedule,) = [a for a in actions if isinstance(a, lc.ScheduleRestart)]
    assert schedule.reason == "was killed by SIGKILL; restart 1 in 0.3 s"
    assert schedule.exit_code == -signal.SIGKILL
    (crashed,) = events(actions)
    assert isinstance(crashed, WorkerCrashed)
    assert (crashed.exit_code, crashed.restart_in, crashed.at) == (-9, 0.3, 3.0)
    assert (crashed.worker_id, crashed.launch) == ("worker-a", 1)
    after, actions = lc.step(after, lc.BackoffOver(), now=3.3)
    assert actions == [lc.Launch(2, restart=True)]
    assert (after.launch, after.ready, after.kill_reason) == (2, False, None)


def test_the_breaker_ends_the_worker_failed_with_a_breaker_event() -> None:
    before = core(phase=P.EXITED, launch=3, last_exit="exited with code 1", exit_code=1)
    give_up = GiveUp(reason="crash loop: 3 exits within 60 s", exits_in_window=3, closes_at=0)
    _, actions = lc.step(before, lc.Decided(give_up, closes_in=42.0), now=1.0)
    (end,) = ends(actions)
    assert end.state is WorkerState.FAILED
    assert "crash loop: 3 exits within 60 s" in end.reason
    assert "the breaker would close in 42 s" in end.reason
    crashed, opened = events(actions)
    assert isinstance(crashed, WorkerCrashed)
    assert crashed.restart_in is None
    assert isinstance(opened, BreakerOpened)
    assert opened.closes_in == 42.0


def test_a_failed_probe_kill_is_the_reason_of_the_crash() -> None:
    after, actions = lc.step(serving(), lc.Kill(1, "killed after 2 failed health checks"), 1)
    assert actions == [lc.SignalKill()]
    after, actions = lc.step(after, lc.Exited(1, -9), now=2.0)
    _, actions = lc.step(after, lc.Decided(Restart(delay=1.0, attempt=1)), now=2.0)
    (schedule,) = [a for a in actions if isinstance(a, lc.ScheduleRestart)]
    assert schedule.reason.startswith("killed after 2 failed health checks; restart 1")


def test_a_loading_timeout_is_a_launch_failure_and_never_restarted() -> None:
    after, _ = lc.step(running(), lc.Kill(1, "not ready 5 s after launch", loading=True), 1)
    after, actions = lc.step(after, lc.Exited(1, -9), now=6.0)
    assert after.phase is P.ENDED
    (end,) = ends(actions)
    assert (end.state, end.reason) == (
        WorkerState.FAILED,
        "not ready 5 s after launch; not restarted",
    )
    (failed,) = events(actions)
    assert isinstance(failed, WorkerLaunchFailed)
    assert failed.code == "WORKER_LOADING_TIMEOUT"


def test_an_exit_within_the_grace_fails_the_start_and_is_counted_as_a_spawn_failure() -> None:
    started, actions = lc.step(core(), lc.Start(forget_on_failure=True), now=0.0)
    assert actions == [lc.Launch(1, restart=False)]
    launched, _ = lc.step(started, lc.Launched(1), now=0.0)
    ended, actions = lc.step(launched, lc.Exited(1, 1), now=0.1)
    assert ended.phase is P.ENDED
    assert lc.FailStart(1, forget=True) in actions
    (failed,) = events(actions)
    assert isinstance(failed, WorkerLaunchFailed)
    assert (failed.code, failed.exit_code, failed.launch) == ("WORKER_EXITED_EARLY", 1, 1)


def test_after_the_grace_an_exit_is_a_crash() -> None:
    started, _ = lc.step(core(), lc.Start(), now=0.0)
    launched, _ = lc.step(started, lc.Launched(1), now=0.0)
    settled, _ = lc.step(launched, lc.GraceOver(), now=0.3)
    after, actions = lc.step(settled, lc.Exited(1, 1), now=5.0)
    assert (after.phase, actions) == (P.EXITED, [lc.Decide(1)])


def test_a_stop_ends_with_the_outcome_of_its_escalation() -> None:
    stopping, _ = lc.step(serving(), lc.StopRequested("idle"), now=1.0)
    assert stopping.in_grace is False
    _, actions = lc.step(stopping, lc.StopFinished(StopOutcome.FORCED, -9), now=2.0)
    (end,) = ends(actions)
    assert (end.state, end.reason, end.exit_code) == (WorkerState.STOPPED, "stopped: idle", -9)
    (stopped,) = events(actions)
    assert isinstance(stopped, WorkerStopped)
    assert (stopped.outcome, stopped.was_ready) == (StopOutcome.FORCED, True)


def test_a_stop_that_cannot_reap_ends_failed() -> None:
    stopping, _ = lc.step(serving(), lc.StopRequested("DELETE"), now=1.0)
    _, actions = lc.step(stopping, lc.StopFinished(StopOutcome.TIMED_OUT, None, 1234), now=9)
    (end,) = ends(actions)
    assert end.state is WorkerState.FAILED
    assert end.reason == "stop (DELETE) could not reap pid 1234"


def test_a_worker_stopped_before_it_was_ready_is_a_cancelled_spawn() -> None:
    _, actions = lc.step(core(), lc.StopRequested("DELETE"), now=1.0)
    (stopped,) = events(actions)
    assert isinstance(stopped, WorkerStopped)
    assert (stopped.outcome, stopped.was_ready) == (StopOutcome.ALREADY_STOPPED, False)


def test_refusing_restarts_cancels_the_backoff_and_ends_the_worker_stopped() -> None:
    waiting = core(phase=P.BACKOFF, launch=1, last_exit="was killed by SIGKILL", exit_code=-9)
    closed, actions = lc.step(waiting, lc.Close(), now=1.0)
    assert actions == [lc.CancelBackoff()]
    _, actions = lc.step(closed, lc.BackoffOver(), now=1.0)
    (end,) = ends(actions)
    assert end.state is WorkerState.STOPPED
    assert "restart cancelled: the hive is shutting down" in end.reason


def test_an_adopted_worker_starts_ready_and_its_crash_restarts_it() -> None:
    adopted = lc.Core.adopted_running(ID, launch=1, now=5.0)
    assert (adopted.phase, adopted.ready, adopted.adopted) == (P.RUNNING, True, True)
    exited, actions = lc.step(adopted, lc.Exited(1, None), now=6.0)
    assert actions == [lc.Decide(None)]
    waiting, _ = lc.step(exited, lc.Decided(Restart(delay=1.0, attempt=1)), now=6.0)
    relaunching, actions = lc.step(waiting, lc.BackoffOver(), now=7.0)
    assert actions == [lc.Launch(2, restart=True)]
    assert relaunching.adopted is False


def test_idle_time_counts_from_the_last_real_use() -> None:
    worker = serving(last_use=0.0)
    busy, _ = lc.step(worker, lc.Activity(True), now=10.0)
    assert lc.step(busy, lc.IdleCheck(5.0), now=100.0)[1] == []  # busy: never idle
    idle, actions = lc.step(busy, lc.Activity(False), now=100.0)
    assert actions == [lc.RecordUse(busy=False)]
    assert idle.last_use == 100.0
    assert lc.step(idle, lc.IdleCheck(5.0), now=104.0)[1] == []
    again, _ = lc.step(idle, lc.Activity(False), now=104.5)
    assert again.last_use == 100.0  # still idle: not a use
    _, actions = lc.step(again, lc.IdleCheck(5.0), now=105.0)
    assert actions == [lc.RequestStop("idle for 5.0 s (idle_timeout 5 s)")]


def test_ready_is_announced_with_the_url() -> None:
    after, actions = lc.step(running(), lc.BecameReady(1, True, "http://h:9"), now=2.0)
    (ready,) = events(actions)
    assert isinstance(ready, WorkerReady)
    assert (ready.url, ready.adopted, ready.launch, ready.at) == ("http://h:9", False, 1, 2.0)
    assert after.last_use == 2.0


# ------------------------------------------------------------------ properties

INPUTS = st.one_of(
    st.builds(lc.Start, st.booleans()),
    st.builds(lc.ProvisionFailed, st.just("model gone")),
    st.builds(lc.Launched, st.integers(0, 4)),
    st.builds(lc.LaunchError, st.integers(0, 4), st.just("E"), st.just("failed")),
    st.just(lc.GraceOver()),
    st.builds(lc.BecameReady, st.integers(0, 4), st.booleans(), st.just("u")),
    st.builds(lc.Used, st.booleans()),
    st.builds(lc.Activity, st.booleans()),
    st.builds(lc.IdleCheck, st.floats(0.1, 10)),
    st.builds(lc.Kill, st.integers(0, 4), st.just("k"), st.booleans()),
    st.builds(lc.Exited, st.integers(0, 4), st.one_of(st.none(), st.integers(-15, 3))),
    st.builds(
        lc.Decided,
        st.one_of(
            st.builds(Restart, st.floats(0, 5), st.integers(1, 5)),
            st.builds(GiveUp, st.just("loop"), st.integers(1, 5), st.floats(0, 9)),
            st.builds(StayDown, st.just("never")),
        ),
    ),
    st.just(lc.BackoffOver()),
    st.just(lc.Close()),
    st.builds(lc.StopRequested, st.just("DELETE")),
    st.builds(
        lc.StopFinished, st.sampled_from(list(StopOutcome)), st.one_of(st.none(), st.just(0))
    ),
    st.builds(lc.HiveGone, st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(INPUTS, max_size=40))
def test_any_sequence_keeps_the_invariants(inputs: list[lc.Input]) -> None:
    state = core()
    ended_once = False
    for n, event in enumerate(inputs):
        before = state
        state, actions = lc.step(state, event, now=float(n))
        # An ended worker stays ended and does nothing more (a stop is answered at once).
        if before.phase is P.ENDED:
            assert state.phase is P.ENDED
            assert all(isinstance(a, lc.Answer | lc.Refuse) for a in actions)
        # The end is recorded once, with exactly one terminal action.
        terminal = [a for a in actions if isinstance(a, lc.End | lc.Discard | lc.FailStart)]
        assert len(terminal) <= 1
        if terminal:
            assert state.phase is P.ENDED
            assert not ended_once
            ended_once = True
        # Launch numbers only grow, one at a time.
        assert state.launch in (before.launch, before.launch + 1)
        # Ready only while running; busy only while ready.
        assert not state.ready or state.phase is P.RUNNING or state.phase is P.STOPPING
        assert not state.busy or state.ready or state.phase is not P.RUNNING
        # Every event names the worker and the launch it is about.
        for emitted in events(actions):
            assert emitted.worker_id == "worker-a"  # type: ignore[attr-defined]
            assert emitted.launch == state.launch  # type: ignore[attr-defined]
