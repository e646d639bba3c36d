"""Speed and time left of a transfer, over a sliding window of recent samples."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from rbee_hive_provisioner._events import DownloadProgress


class SpeedMeter:
    """Turns (time, bytes so far) samples into ``DownloadProgress`` events.

    The speed is measured over the last ``window`` seconds, so a resume or a pause shows in
    the figure within a few seconds instead of being averaged away.
    """

    def __init__(
        self, total: int | None, clock: Callable[[], float], start: int = 0, window: float = 3.0
    ) -> None:
        self._total = total
        self._clock = clock
        self._window = window
        self._samples: deque[tuple[float, int]] = deque([(clock(), start)])

    def __repr__(self) -> str:
        return f"<SpeedMeter total={self._total} samples={len(self._samples)}>"

    def sample(self, done: int) -> DownloadProgress:
        """Record that ``done`` bytes are in place now; the progress event to publish."""
        now = self._clock()
        samples = self._samples
        if samples and done < samples[-1][1]:
            samples.clear()  # the partial file was reset: the old samples mean nothing now
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= self._window:
            samples.popleft()
        first_time, first_done = samples[0]
        elapsed = now - first_time
        rate = (done - first_done) / elapsed if elapsed > 0 else 0.0
        eta: float | None = None
        if self._total is not None and rate > 0:
            eta = max(self._total - done, 0) / rate
        elif self._total is not None and done >= self._total:
            eta = 0.0
        return DownloadProgress(
            bytes_downloaded=done,
            bytes_total=self._total,
            speed_mbps=rate * 8 / 1e6,
            eta_seconds=eta,
        )
