from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rbee_hive_restart
from rbee_hive_restart import (
    Backoff,
    BreakerSettings,
    GiveUp,
    InvalidRestartSetting,
    Restart,
    RestartPolicy,
    RestartTracker,
    StayDown,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def middle() -> float:
    return 0.5  # the jitter draw that adds nothing


def tracker(clock: FakeClock, **kwargs: object) -> RestartTracker:
    return RestartTracker(clock=clock, random=middle, **kwargs)  # type: ignore[arg-type]


def test_default_backoff_doubles_from_one_second_to_a_sixty_second_cap() -> None:
    backoff = Backoff()
    assert [backoff.nominal(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert Backoff().nominal(10_000) == 60


@given(attempt=st.integers(0, 50), draw=st.floats(0, 1, exclude_max=True))
def test_jitter_stays_within_twenty_percent(attempt: int, draw: float) -> None:
    backoff = Backoff()
    nominal = backoff.nominal(attempt)
    assert 0.8 * nominal - 1e-9 <= backoff.delay(attempt, draw) <= 1.2 * nominal + 1e-9


def test_jitter_extremes_are_exact() -> None:
    backoff = Backoff(base=10, jitter=0.2)
    assert backoff.delay(0, 0.0) == pytest.approx(8.0)
    assert backoff.delay(0, 0.5) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        (RestartPolicy.ALWAYS, 0, True),
        (RestartPolicy.ALWAYS, 1, True),
        (RestartPolicy.ON_FAILURE, 0, False),
        (RestartPolicy.ON_FAILURE, 1, True),
        (RestartPolicy.ON_FAILURE, -9, True),
        (RestartPolicy.ON_FAILURE, None, True),
        (RestartPolicy.NEVER, 1, False),
    ],
)
def test_policies_decide_which_exits_restart(
    policy: RestartPolicy, code: int | None, restarts: bool
) -> None:
    assert policy.wants_restart(code) is restarts


def test_policy_parse_names_the_choices() -> None:
    assert RestartPolicy.parse("on-failure") is RestartPolicy.ON_FAILURE
    with pytest.raises(InvalidRestartSetting, match="always, on-failure, never"):
        RestartPolicy.parse("sometimes")


def test_consecutive_crashes_back_off_exponentially() -> None:
    clock = FakeClock()
    t = tracker(clock)
    delays = []
    for _ in range(3):
        t.started()
        clock.now += 1
        decision = t.exited(1)
        assert isinstance(decision, Restart)
        delays.append(decision.delay)
        clock.now += decision.delay
    assert delays == [1, 2, 4]
    assert t.attempt == 3


def test_five_crashes_in_five_minutes_open_the_breaker_and_say_when_it_closes() -> None:
    clock = FakeClock()
    t = tracker(clock, backoff=Backoff(base=0.1, cap=0.1))
    decisions = []
    for _ in range(5):
        t.started()
        clock.now += 10
        decisions.append(t.exited(137))
    assert all(isinstance(d, Restart) for d in decisions[:4])
    last = decisions[4]
    assert isinstance(last, GiveUp)
    assert last.exits_in_window == 5
    assert last.closes_at == 1010 + 300
    assert "5 exits within 300 s" in last.reason


def test_crashes_spread_wider_than_the_window_never_open_the_breaker() -> None:
    clock = FakeClock()
    t = tracker(clock, breaker=BreakerSettings(threshold=3, window=60), stable_after=1e9)
    for _ in range(10):
        t.started()
        clock.now += 31
        assert isinstance(t.exited(1), Restart)


def test_a_stable_run_resets_the_backoff() -> None:
    clock = FakeClock()
    t = tracker(clock)
    for _ in range(3):
        t.started()
        clock.now += 1
        t.exited(1)
    t.started()
    clock.now += 600
    decision = t.exited(1)
    assert decision == Restart(delay=1, attempt=1)


def test_a_clean_exit_under_on_failure_stays_down() -> None:
    clock = FakeClock()
    t = tracker(clock)
    t.started()
    decision = t.exited(0)
    assert isinstance(decision, StayDown)
    assert "exit code 0" in decision.reason


@pytest.mark.parametrize(
    "build",
    [
        lambda: Backoff(base=0),
        lambda: Backoff(cap=-1),
        lambda: Backoff(jitter=1.0),
        lambda: BreakerSettings(threshold=0),
        lambda: BreakerSettings(window=0),
    ],
)
def test_nonsense_settings_are_refused(build: object) -> None:
    with pytest.raises(InvalidRestartSetting):
        build()  # type: ignore[operator]


def test_public_api_matches_all() -> None:
    exported = {n for n in dir(rbee_hive_restart) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_restart.__all__) <= exported
    assert exported - set(rbee_hive_restart.__all__) <= {"exceptions"}
