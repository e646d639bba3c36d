"""Printing for people (tables, sizes, progress) and for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click


def emit_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def human_bytes(n: float | None) -> str:
    """``1.5 GiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_seconds(s: float | None) -> str:
    """``1m02s``."""
    if s is None:
        return "?"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table; an empty one says so."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))


class ProgressLine:
    """A one-line progress display on stderr: redrawn in place on a terminal, a line every
    few seconds otherwise (logs, CI)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, event: dict[str, Any]) -> None:
        """Show a ``downloading`` event."""
        done = event.get("bytes_downloaded")
        total = event.get("bytes_total")
        pct = f"{100 * done / total:5.1f}%" if done is not None and total else "  ?  "
        speed = event.get("speed_mbps") or 0
        eta = human_seconds(event.get("eta_seconds"))
        line = (
            f"{self._label}: {pct} {human_bytes(done)} / {human_bytes(total)}  "
            f"{speed:.1f} MB/s  ETA {eta}"
        )
        now = time.monotonic()
        if self._tty:
            click.echo("\r" + line.ljust(78), nl=False, err=True)
        elif now - self._last >= 5:
            click.echo(line, err=True)
            self._last = now

    def finish(self, message: str) -> None:
        """End the line with ``message``."""
        if self._tty:
            click.echo("\r" + " " * 78 + "\r", nl=False, err=True)
        click.echo(message, err=True)
