"""Restart bookkeeping for one worker: backoff attempts, the crash-loop breaker, the reset."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs

from rbee_hive_restart._backoff import Backoff
from rbee_hive_restart._policy import RestartPolicy
from rbee_hive_restart.exceptions import InvalidRestartSetting


@attrs.frozen
class BreakerSettings:
    """The crash-loop breaker opens when ``threshold`` exits happen within ``window`` seconds.

    Defaults: 5 in 300 s (systemd's StartLimitBurst over StartLimitIntervalSec, same idea).
    """

    threshold: int = 5
    window: float = 300.0

    def __attrs_post_init__(self) -> None:
        if self.threshold < 1:
            raise InvalidRestartSetting(f"breaker threshold must be >= 1, got {self.threshold}")
        if not self.window > 0:
            raise InvalidRestartSetting(f"breaker window must be > 0 s, got {self.window}")


@attrs.frozen
class Restart:
    """Start the worker again after ``delay`` seconds; this is restart number ``attempt``."""

    delay: float
    attempt: int


@attrs.frozen
class GiveUp:
    """The breaker is open: leave the worker down. ``closes_at`` is when (on the injected clock)
    the oldest exit leaves the window, so a restart would be allowed again."""

    reason: str
    exits_in_window: int
    closes_at: float


@attrs.frozen
class StayDown:
    """The policy does not restart this exit (``never``, or a clean exit under ``on-failure``)."""

    reason: str


RestartDecision = Restart | GiveUp | StayDown


@attrs.define
class RestartTracker:
    """Decides, exit by exit, whether and when one worker is started again.

    Pure: the clock (seconds, monotonic) and the random draw are injected, nothing sleeps.
    Call ``started()`` each time a process is launched and ``exited(code)`` when one ends on
    its own. After ``stable_after`` seconds of uninterrupted running the backoff starts over
    (kubelet resets after 10 minutes; so does this, by default).
    """

    clock: Callable[[], float]
    random: Callable[[], float]
    policy: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff: Backoff = attrs.field(factory=Backoff)
    breaker: BreakerSettings = attrs.field(factory=BreakerSettings)
    stable_after: float = 600.0
    _attempt: int = attrs.field(default=0, init=False)
    _exits: deque[float] = attrs.field(factory=deque, init=False)
    _last_start: float | None = attrs.field(default=None, init=False)

    @property
    def attempt(self) -> int:
        """How many restarts in a row since the last stable run."""
        return self._attempt

    def started(self) -> None:
        """A process for this worker was just launched."""
        self._last_start = self.clock()

    def exited(self, exit_code: int | None) -> RestartDecision:
        """The process ended without being asked to; say what to do."""
        now = self.clock()
        if self._last_start is not None and now - self._last_start >= self.stable_after:
            self._attempt = 0
        self._last_start = None
        if not self.policy.wants_restart(exit_code):
            return StayDown(
                f"restart policy {self.policy.value!r} does not restart exit code {exit_code}"
            )
        self._exits.append(now)
        while self._exits and self._exits[0] <= now - self.breaker.window:
            self._exits.popleft()
        if len(self._exits) >= self.breaker.threshold:
            return GiveUp(
                reason=(
                    f"crash loop: {len(self._exits)} exits within {self.breaker.window:g} s "
                    f"(breaker threshold {self.breaker.threshold})"
                ),
                exits_in_window=len(self._exits),
                closes_at=self._exits[0] + self.breaker.window,
            )
        delay = self.backoff.delay(self._attempt, self.random())
        self._attempt += 1
        return Restart(delay=delay, attempt=self._attempt)
