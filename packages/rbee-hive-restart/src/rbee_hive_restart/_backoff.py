"""Exponential backoff with a cap and symmetric jitter."""

from __future__ import annotations

import attrs

from rbee_hive_restart.exceptions import InvalidRestartSetting


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidRestartSetting(f"backoff {attribute.name} must be > 0, got {value}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < 1:
        raise InvalidRestartSetting(f"backoff {attribute.name} must be in [0, 1), got {value}")


@attrs.frozen
class Backoff:
    """Delay before restart attempt ``n`` (0-based): ``min(base * factor**n, cap)``, then
    spread by +-``jitter`` (a fraction) so a fleet of crashed workers does not restart in step.

    Defaults: 1 s, doubling, capped at 60 s, +-20 %.
    """

    base: float = attrs.field(default=1.0, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=_positive)
    cap: float = attrs.field(default=60.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)

    def nominal(self, attempt: int) -> float:
        """The delay before jitter."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # Compare exponents, not products, so a large attempt cannot overflow a float.
        delay = self.base
        for _ in range(attempt):
            delay *= self.factor
            if delay >= self.cap:
                return self.cap
        return min(delay, self.cap)

    def delay(self, attempt: int, random: float) -> float:
        """The jittered delay; ``random`` is a uniform draw from [0, 1) that the caller injects."""
        if not 0 <= random < 1:
            raise ValueError(f"random must be in [0, 1), got {random}")
        return self.nominal(attempt) * (1 + self.jitter * (2 * random - 1))
