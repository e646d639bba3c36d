from __future__ import annotations

import pytest

from rbee_hive_registry import TRANSITIONS, WorkerState, transition_allowed


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(WorkerState)


def test_stopped_and_failed_are_terminal_and_nothing_else_is() -> None:
    terminal = {s for s in WorkerState if s.is_terminal}
    assert terminal == {WorkerState.STOPPED, WorkerState.FAILED}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (WorkerState.PROVISIONING, WorkerState.LOADING),
        (WorkerState.LOADING, WorkerState.IDLE),
        (WorkerState.IDLE, WorkerState.BUSY),
        (WorkerState.BUSY, WorkerState.IDLE),
        (WorkerState.IDLE, WorkerState.LOADING),  # crash, restart scheduled
        (WorkerState.STOPPING, WorkerState.STOPPED),
    ],
)
def test_the_lifecycle_moves_are_allowed(current: WorkerState, target: WorkerState) -> None:
    assert transition_allowed(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (WorkerState.IDLE, WorkerState.PROVISIONING),
        (WorkerState.STOPPED, WorkerState.LOADING),
        (WorkerState.FAILED, WorkerState.IDLE),
        (WorkerState.STOPPING, WorkerState.IDLE),
        (WorkerState.PROVISIONING, WorkerState.IDLE),
    ],
)
def test_moves_that_would_lose_track_of_a_worker_are_refused(
    current: WorkerState, target: WorkerState
) -> None:
    assert not transition_allowed(current, target)


def test_wire_values_are_the_lowercase_names() -> None:
    assert [s.value for s in WorkerState] == [
        "provisioning",
        "loading",
        "idle",
        "busy",
        "stopping",
        "stopped",
        "failed",
    ]
