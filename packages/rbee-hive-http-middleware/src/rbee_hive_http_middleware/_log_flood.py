"""Keep one repeated log message from flooding the log: a few copies, then a count.

A hive that runs out of file descriptors, or a client that hammers a bad URL, produces the same
warning thousands of times a second; with a traceback each, that once grew a log by 286 MB.
``LogFloodFilter`` lets the first ``burst`` records of one kind through per ``window`` seconds
and drops the rest; the next record of that kind after the window says how many were dropped,
and ``flush`` reports what is still pending (call it at shutdown).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rbee_hive_http_middleware._sampling import RepeatSampler

#: What makes two records "similar": logger, level, message template and exception type.
_Kind = tuple[str, int, str, str]
#: Set on the summary records of ``flush`` so that they are never dropped themselves.
_SUMMARY = "rbee_log_flood_summary"


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
        self._min_level = min_level
        self._sampler: RepeatSampler[_Kind] = RepeatSampler(
            window, clock, burst=burst, max_keys=max_kinds
        )

    def __repr__(self) -> str:
        return (
            f"LogFloodFilter(burst={self._sampler.burst}, window={self._sampler.window}, "
            f"tracked={len(self._sampler)}, suppressed={self.suppressed})"
        )

    @property
    def suppressed(self) -> int:
        """Records dropped and not yet reported."""
        return self._sampler.dropped

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._min_level or getattr(record, _SUMMARY, False):
            return True
        dropped = self._sampler.admit(_kind(record))
        if dropped is None:
            return False
        if dropped:
            record.msg = (
                f"{record.msg} [suppressed {dropped} similar messages "
                f"in the previous {self._sampler.window:g} s]"
            )
        return True

    def flush(self, logger: logging.Logger) -> int:
        """Log one summary line per kind with dropped records; returns how many were dropped.

        The summaries go through ``logger`` at the level of the records they stand for.
        """
        pending = self._sampler.take_dropped()
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
