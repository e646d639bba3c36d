"""Benchmark: the median time to render /metrics with 1,000 registered workers.

Builds two HiveMetrics that read live state at scrape time, one over a registry of 1,000
workers and one over an empty registry (the baseline, measured in the same run, scrapes
interleaved), both with host RAM and disk read for real. Prints both medians, the ratio and
PASS/FAIL against the target: median < 20 ms with 1,000 workers.

    uv run python scripts/bench/bench_metrics.py [--workers 1000] [--scrapes 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rbee_hive_metrics import HiveMetrics, LiveState, WorkerRow
from rbee_hive_registry import WorkerInfo, WorkerRegistry, WorkerState
from rbee_hive_resources import HostResources

TARGET_MEDIAN_S = 0.020
STATES = [WorkerState.IDLE, WorkerState.BUSY, WorkerState.LOADING, WorkerState.IDLE]


def registry_of(count: int) -> WorkerRegistry:
    registry = WorkerRegistry()
    now = datetime.now(UTC)
    for n in range(count):
        registry.register(
            WorkerInfo(
                id=f"worker-{n:04d}",
                url=f"http://127.0.0.1:{20000 + n}",
                model_ref=f"hf:org/model-{n % 10}:model.gguf",
                backend="cuda" if n % 3 else "cpu",
                device=n % 8 if n % 3 else 0,
                state=STATES[n % len(STATES)],
                last_activity=now,
                port=20000 + n,
            )
        )
    return registry


def metrics_over(registry: WorkerRegistry, host: HostResources) -> HiveMetrics:
    def workers() -> list[WorkerRow]:
        return [WorkerRow(w.state.value, w.backend, w.device) for w in registry.list()]

    metrics = HiveMetrics(
        LiveState(
            workers=workers,
            active_downloads=lambda: 1,
            memory=host.memory,
            disks=host.disks,
            gpus=lambda: host.gpus().gpus,
        )
    )
    for _ in range(50):
        metrics.count_spawn("ready")
        metrics.observe_http_request("GET", "/v1/workers/list", 200, 0.003)
    return metrics


def timed_render(metrics: HiveMetrics) -> float:
    start = time.perf_counter()
    metrics.render()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state:
        host = HostResources(disks={"models": Path(state), "state": Path(state)})
        loaded = metrics_over(registry_of(args.workers), host)
        empty = metrics_over(registry_of(0), host)
        body, content_type = loaded.render()
        for _ in range(20):  # warm-up
            loaded.render()
            empty.render()
        with_workers: list[float] = []
        baseline: list[float] = []
        for _ in range(args.scrapes):
            with_workers.append(timed_render(loaded))
            baseline.append(timed_render(empty))
        host.close()

    loaded_median = statistics.median(with_workers)
    empty_median = statistics.median(baseline)
    verdict = "PASS" if loaded_median < TARGET_MEDIAN_S else "FAIL"
    print(f"scrape body with {args.workers} workers: {len(body)} bytes ({content_type})")
    print(
        f"median render, {args.workers} workers: {loaded_median * 1000:.2f} ms "
        f"(p95 {statistics.quantiles(with_workers, n=20)[-1] * 1000:.2f} ms, "
        f"{args.scrapes} scrapes)"
    )
    print(f"median render, no workers (baseline): {empty_median * 1000:.2f} ms")
    print(f"ratio: {loaded_median / empty_median:.2f}x the baseline")
    print(f"{verdict}: target median < {TARGET_MEDIAN_S * 1000:.0f} ms with {args.workers} workers")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
