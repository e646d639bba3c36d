"""Errors raised by the restart policy."""

from __future__ import annotations


class InvalidRestartSetting(ValueError):
    """Raised when a policy, backoff or breaker setting is out of range; names the setting."""
