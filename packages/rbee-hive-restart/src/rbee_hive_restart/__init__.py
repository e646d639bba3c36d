"""Pure restart policy for rbee-hive workers: no I/O, no sleeping, clock and randomness injected.

``RestartPolicy`` says which exits deserve a restart, ``Backoff`` how long to wait,
``RestartTracker`` combines them with the crash-loop breaker (``BreakerSettings``) and answers
each exit with a ``Restart``, ``GiveUp`` or ``StayDown`` decision.
"""

from rbee_hive_restart._backoff import Backoff
from rbee_hive_restart._policy import RestartPolicy
from rbee_hive_restart._tracker import (
    BreakerSettings,
    GiveUp,
    Restart,
    RestartDecision,
    RestartTracker,
    StayDown,
)
from rbee_hive_restart.exceptions import InvalidRestartSetting

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "Backoff",
    "BreakerSettings",
    "GiveUp",
    "InvalidRestartSetting",
    "Restart",
    "RestartDecision",
    "RestartPolicy",
    "RestartTracker",
    "StayDown",
    "__version__",
]
