"""One mechanism for "let a few through, count the rest": per key, at most ``burst`` events
per ``window`` seconds pass and the others are counted, in bounded memory and never sleeping.

``LogFloodFilter`` keys it by log-message kind; the auth middleware keys it by client and
refusal reason, so a client that keeps asking without a token costs one audit record a minute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import attrs

K = TypeVar("K", bound=Hashable)


@attrs.define
class _Window:
    start: float
    passed: int = 1
    dropped: int = 0


class RepeatSampler(Generic[K]):
    """Per key, the first ``burst`` events of each ``window`` pass; the others are counted.

    Thread-safe. The ``max_keys`` least recently opened windows are kept; an older key's
    uncounted drops are forgotten with it.
    """

    def __init__(
        self,
        window: float,
        clock: Callable[[], float],
        *,
        burst: int = 1,
        max_keys: int = 10_000,
    ) -> None:
        if window <= 0 or burst < 1 or max_keys < 1:
            raise ValueError(
                f"RepeatSampler needs window > 0, burst >= 1 and max_keys >= 1; got "
                f"window={window}, burst={burst}, max_keys={max_keys}"
            )
        self.window = window
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[K, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RepeatSampler(window={self.window:g}, burst={self.burst}, "
            f"tracked={len(self._keys)}, dropped={self.dropped})"
        )

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def dropped(self) -> int:
        """Events counted and not yet reported (by ``admit`` or ``take_dropped``)."""
        with self._lock:
            return sum(w.dropped for w in self._keys.values())

    def admit(self, key: K) -> int | None:
        """None when this event is dropped (it is counted). Otherwise it passes: the number
        of ``key``'s events dropped in its previous window when this one opens a new window,
        else 0."""
        now = self._clock()
        with self._lock:
            current = self._keys.get(key)
            if current is not None and now - current.start < self.window:
                if current.passed < self.burst:
                    current.passed += 1
                    return 0
                current.dropped += 1
                return None
            self._keys[key] = _Window(start=now)
            self._keys.move_to_end(key)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            return 0 if current is None else current.dropped

    def take_dropped(self) -> list[tuple[K, int]]:
        """Each key with dropped events not yet reported, and how many; they count as
        reported from now on."""
        with self._lock:
            pending = [(key, w.dropped) for key, w in self._keys.items() if w.dropped]
            for key, _count in pending:
                self._keys[key].dropped = 0
        return pending
