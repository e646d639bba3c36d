"""Keep one repeated log message from flooding the log: a few copies, then a count.

A hive that runs out of file descriptors, or a client that hammers a bad URL, produces the same
warning thousands of times a second; with a traceback each, that once grew a log by 286 MB.
``LogFloodFilter`` lets the first ``burst`` records of one kind through per ``window`` seconds
and drops the rest; the next record of that kind after the window says how many were dropped,
and ``flush`` reports what is still pending (call it at shutdown).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import attrs

#: What makes two records "similar": logger, level, message template and exception type.
_Kind = tuple[str, int, str, str]
#: Set on the summary records of ``flush`` so that they are never dropped themselves.
_SUMMARY = "rbee_log_flood_summary"


@attrs.define
class _Seen:
    window_start: float
    passed: int = 1
    suppressed: int = 0


def _kind(record: logging.LogRecord) -> _Kind:
    exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
    return (record.name, record.levelno, str(record.msg), exc)


class LogFloodFilter(logging.Filter):
    """Pass at most ``burst`` records of one kind per ``window`` seconds; count the others.

    Records are of one kind when they come from the same logger at the same level with the
    same message template (before ``%`` arguments are applied) and the same exception type,
    so "auth failed from %s" from a thousand addresses is one kind. Records below
    ``min_level`` always pass. Attach it to a handler: ``handler.addFilter(LogFloodFilter())``.
    """

    def __init__(
        self,
        *,
        burst: int = 5,
        window: float = 60.0,
        min_level: int = logging.WARNING,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or window <= 0 or max_kinds < 1:
            raise ValueError(
                f"LogFloodFilter needs burst >= 1, window > 0 and max_kinds >= 1; got "
                f"burst={burst}, window={window}, max_kinds={max_kinds}"
            )
        self._burst = burst
        self._window = window
        self._min_level = min_level
        self._max_kinds = max_kinds
        self._clock = clock
        self._seen: OrderedDict[_Kind, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LogFloodFilter(burst={self._burst}, window={self._window}, "
            f"tracked={len(self._seen)}, suppressed={self.suppressed})"
        )

    @property
    def suppressed(self) -> int:
        """Records dropped and not yet reported."""
        with self._lock:
            return sum(seen.suppressed for seen in self._seen.values())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._min_level or getattr(record, _SUMMARY, False):
            return True
        kind = _kind(record)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is None or now - seen.window_start >= self._window:
                dropped = 0 if seen is None else seen.suppressed
                self._seen[kind] = _Seen(window_start=now)
                self._seen.move_to_end(kind)
                while len(self._seen) > self._max_kinds:
                    self._seen.popitem(last=False)
                if dropped:
                    record.msg = (
                        f"{record.msg} [suppressed {dropped} similar messages "
                        f"in the previous {self._window:g} s]"
                    )
                return True
            if seen.passed < self._burst:
                seen.passed += 1
                return True
            seen.suppressed += 1
            return False

    def flush(self, logger: logging.Logger) -> int:
        """Log one summary line per kind with dropped records; returns how many were dropped.

        The summaries go through ``logger`` at the level of the records they stand for.
        """
        with self._lock:
            pending = [
                (kind, seen.suppressed) for kind, seen in self._seen.items() if seen.suppressed
            ]
            for kind, _count in pending:
                self._seen[kind].suppressed = 0
        for (name, level, template, exc), count in pending:
            logger.log(
                level,
                "suppressed %d similar messages from %s: %s%s",
                count,
                name,
                ascii(template[:200]),
                f" ({exc})" if exc else "",
                extra={_SUMMARY: True},
            )
        return sum(count for _kind, count in pending)
