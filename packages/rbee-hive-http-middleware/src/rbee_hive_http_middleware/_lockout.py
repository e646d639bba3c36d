"""Lock out a client address after repeated authentication failures, in O(1) and bounded memory."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import attrs


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"LockoutPolicy.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class LockoutPolicy:
    """How many failures in which window lock a client address out, and for how long."""

    enabled: bool = True
    max_failures: int = attrs.field(default=10, validator=_positive)
    window_seconds: float = attrs.field(default=300.0, validator=_positive)
    lockout_seconds: float = attrs.field(default=900.0, validator=_positive)
    #: Addresses tracked at once; the least recently seen is forgotten beyond this.
    max_tracked_clients: int = attrs.field(default=10_000, validator=_positive)


@attrs.define
class _Client:
    failures: deque[float]
    locked_until: float | None = None


class FailureTracker:
    """Failure history per client address under a ``LockoutPolicy``; never sleeps."""

    def __init__(self, policy: LockoutPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __repr__(self) -> str:
        return f"FailureTracker(tracked={len(self._clients)}, policy={self._policy!r})"

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or None when it is not locked out."""
        entry = self._clients.get(address)
        if entry is None or entry.locked_until is None:
            return None
        remaining = entry.locked_until - self._clock()
        if remaining <= 0:
            del self._clients[address]  # the lockout expired: start from a clean slate
            return None
        return max(1, math.ceil(remaining))

    def record_failure(self, address: str) -> bool:
        """Count one failure; True when this failure locks the address out."""
        if not self._policy.enabled:
            return False
        now = self._clock()
        entry = self._clients.get(address)
        if entry is None:
            entry = _Client(failures=deque(maxlen=self._policy.max_failures))
            self._clients[address] = entry
            if len(self._clients) > self._policy.max_tracked_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(address)
        entry.failures.append(now)
        window_start = now - self._policy.window_seconds
        if (
            entry.locked_until is None
            and len(entry.failures) == self._policy.max_failures
            and entry.failures[0] >= window_start
        ):
            entry.locked_until = now + self._policy.lockout_seconds
            entry.failures.clear()
            return True
        return False

    def record_success(self, address: str) -> None:
        """Forget the failures of ``address`` (it proved it holds a valid credential)."""
        entry = self._clients.get(address)
        if entry is not None and entry.locked_until is None:
            del self._clients[address]
