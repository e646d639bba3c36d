"""Which exits deserve a restart."""

from __future__ import annotations

import enum

from rbee_hive_restart.exceptions import InvalidRestartSetting


class RestartPolicy(enum.Enum):
    """When a worker that exited on its own is started again (never after a stop we asked for)."""

    ALWAYS = "always"
    """Restart after any exit, clean or not."""
    ON_FAILURE = "on-failure"
    """Restart after a non-zero exit or a death by signal; a clean exit 0 stays down."""
    NEVER = "never"
    """Never restart."""

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """Parse a setting value; raises ``InvalidRestartSetting`` naming the choices."""
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise InvalidRestartSetting(
                f"restart policy {text!r} is not one of: {choices}"
            ) from None

    def wants_restart(self, exit_code: int | None) -> bool:
        """Whether an exit with ``exit_code`` (None: unknown, negative: killed by a signal)
        asks for a restart under this policy."""
        if self is RestartPolicy.NEVER:
            return False
        if self is RestartPolicy.ALWAYS:
            return True
        return exit_code != 0
