"""Byte units, and how byte counts are written for a person."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def describe_bytes(count: int) -> str:
    """``count`` in the largest binary unit that keeps it at or above one, one decimal."""
    if abs(count) >= GiB:
        return f"{count / GiB:.1f} GiB"
    if abs(count) >= MiB:
        return f"{count / MiB:.1f} MiB"
    if abs(count) >= KiB:
        return f"{count / KiB:.1f} KiB"
    return f"{count} B"
