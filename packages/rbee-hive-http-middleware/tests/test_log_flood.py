from __future__ import annotations

import logging
import threading

import pytest

from rbee_hive_http_middleware import LogFloodFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Collects the formatted lines that got through the handler's filters."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _logger(name: str, flood: LogFloodFilter) -> tuple[logging.Logger, Lines]:
    handler = Lines()
    handler.addFilter(flood)
    logger = logging.getLogger(f"rbee_hive.test_flood.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, handler


def _fail(logger: logging.Logger, n: int) -> None:
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logger.exception("socket.accept() out of system resource (attempt %d)", n)


def test_a_flood_of_one_error_is_logged_a_few_times_then_counted(clock: Clock) -> None:
    flood = LogFloodFilter(burst=5, window=60, clock=clock)
    logger, out = _logger("emfile", flood)
    for n in range(10_000):
        _fail(logger, n)
    assert len(out.lines) == 5
    assert flood.suppressed == 9_995
    clock.now += 60
    _fail(logger, 10_000)
    assert len(out.lines) == 6
    assert "suppressed 9995 similar messages in the previous 60 s" in out.lines[-1]
    assert "attempt 10000" in out.lines[-1]
    assert flood.suppressed == 0


def test_different_messages_are_limited_separately(clock: Clock) -> None:
    flood = LogFloodFilter(burst=2, window=60, clock=clock)
    logger, out = _logger("kinds", flood)
    for n in range(50):
        logger.warning("auth failed from %s", f"10.0.0.{n}")
        logger.warning("worker %s crashed", n)
        logger.error("auth failed from %s", f"10.0.0.{n}")  # another level: another kind
    assert out.lines == [
        "auth failed from 10.0.0.0",
        "worker 0 crashed",
        "auth failed from 10.0.0.0",
        "auth failed from 10.0.0.1",
        "worker 1 crashed",
        "auth failed from 10.0.0.1",
    ]


def test_records_below_the_minimum_level_always_pass(clock: Clock) -> None:
    flood = LogFloodFilter(burst=1, window=60, clock=clock)
    logger, out = _logger("info", flood)
    for n in range(20):
        logger.info("worker %d ready", n)
    assert len(out.lines) == 20


def test_flush_reports_what_is_still_pending_and_is_never_itself_dropped(clock: Clock) -> None:
    flood = LogFloodFilter(burst=1, window=60, clock=clock)
    logger, out = _logger("flush", flood)
    for n in range(3):
        for _ in range(4):
            logger.warning(f"kind {n} happened")  # three templates on purpose
    assert len(out.lines) == 3
    assert flood.flush(logger) == 9
    summaries = out.lines[3:]
    assert len(summaries) == 3  # the three summaries share a template, yet none is dropped
    assert all("suppressed 3 similar messages" in line for line in summaries)
    assert "'kind 2 happened'" in summaries[2]
    assert flood.flush(logger) == 0


def test_the_number_of_kinds_tracked_is_bounded(clock: Clock) -> None:
    flood = LogFloodFilter(burst=1, window=60, max_kinds=10, clock=clock)
    logger, _ = _logger("bounded", flood)
    for n in range(1000):
        logger.warning(f"unique message {n}")  # each its own template on purpose
    assert "tracked=10" in repr(flood)


def test_concurrent_threads_never_pass_more_than_the_burst(clock: Clock) -> None:
    flood = LogFloodFilter(burst=5, window=60, clock=clock)
    logger, out = _logger("threads", flood)

    def hammer() -> None:
        for _ in range(500):
            logger.error("same error")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(out.lines) == 5
    assert flood.suppressed == 8 * 500 - 5


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst >= 1"):
        LogFloodFilter(burst=0)
