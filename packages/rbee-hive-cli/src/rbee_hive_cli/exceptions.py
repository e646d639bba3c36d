"""Errors of the command line."""

from __future__ import annotations


class SettingError(ValueError):
    """Raised when a setting has a bad value; the message names the setting, where the value
    came from (flag, environment variable, config file), what was expected and what was given."""


class DaemonStartError(RuntimeError):
    """Raised when the daemon cannot start (address taken, public bind without a token, an
    unusable state folder); the message says what to do."""
