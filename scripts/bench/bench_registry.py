"""Registry benchmark: 10,000 workers, one change-feed subscriber attached.

Times register (building the record from a spawn request and storing it), transition,
list and counts-by-state on ``WorkerRegistry`` and the same
operations on a plain dict in the same run, and prints operations per second and the ratio
(registry / dict; higher is better). Targets: every ratio >= 0.25, list of 10,000 < 20 ms.

    uv run python scripts/bench/bench_registry.py [--workers 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from rbee_hive_registry import WorkerInfo, WorkerRegistry, WorkerState

NOW = datetime.now(UTC)


def make_worker(i: int) -> WorkerInfo:
    """The record a spawn builds; both sides of the register benchmark build it."""
    return WorkerInfo(
        id=f"worker-{i:06d}",
        url=f"http://127.0.0.1:{8081 + i % 900}",
        model_ref=f"hf:org/model-{i % 7}",
        backend="cpu",
        device=0,
        state=WorkerState.LOADING,
        last_activity=NOW,
        port=8081 + i % 900,
    )


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(n: int, rounds: int) -> int:
    workers = [make_worker(i) for i in range(n)]
    results: dict[str, tuple[float, float, int]] = {}

    # ---------------------------------------------------------------- registry
    def registry_register() -> WorkerRegistry:
        reg = WorkerRegistry()
        reg.subscribe(capacity=4 * n)  # one subscriber attached, never lagging
        for i in range(n):
            reg.register(make_worker(i))
        return reg

    def dict_register() -> dict[str, WorkerInfo]:
        d: dict[str, WorkerInfo] = {}
        for i in range(n):
            w = make_worker(i)
            if w.id in d:
                raise KeyError(w.id)
            d[w.id] = w
        return d

    results["register"] = (
        best_of(rounds, registry_register),
        best_of(rounds, dict_register),
        n,
    )

    reg = registry_register()
    plain = dict_register()
    ids = [w.id for w in workers]

    for wid in ids:  # untimed: bring every worker to IDLE, then time BUSY <-> IDLE rounds
        reg.transition(wid, WorkerState.IDLE)
        plain[wid] = attrs.evolve(plain[wid], state=WorkerState.IDLE)

    def registry_transition() -> None:
        for wid in ids:
            reg.transition(wid, WorkerState.BUSY)
        for wid in ids:
            reg.transition(wid, WorkerState.IDLE)

    def dict_transition() -> None:
        # The plain-dict equivalent: check the move, write a new frozen record.
        for target in (WorkerState.BUSY, WorkerState.IDLE):
            for wid in ids:
                current = plain[wid]
                if current.state is target:
                    raise ValueError(target)
                plain[wid] = attrs.evolve(current, state=target, revision=current.revision + 1)

    results["transition"] = (
        best_of(rounds, registry_transition),
        best_of(rounds, dict_transition),
        2 * n,
    )

    list_reg = best_of(rounds * 4, reg.list)
    list_dict = best_of(rounds * 4, lambda: list(plain.values()))
    results["list"] = (list_reg, list_dict, 1)

    results["counts_by_state"] = (
        best_of(rounds * 4, reg.counts_by_state),
        best_of(
            rounds * 4,
            lambda: collections.Counter(w.state for w in plain.values()),
        ),
        1,
    )

    print(f"rbee-hive registry benchmark: {n} workers, 1 change-feed subscriber, best of {rounds}")
    print(f"{'operation':<16}{'registry ops/s':>16}{'dict ops/s':>16}{'ratio':>8}  target")
    failed = False
    for name, (reg_s, dict_s, ops) in results.items():
        ratio = dict_s / reg_s
        ok = ratio >= 0.25
        failed |= not ok
        print(
            f"{name:<16}{ops / reg_s:>16,.0f}{ops / dict_s:>16,.0f}{ratio:>8.2f}"
            f"  >= 0.25 {'PASS' if ok else 'FAIL'}"
        )
    list_ms = results["list"][0] * 1000
    list_ok = list_ms < 20
    failed |= not list_ok
    print(f"list of {n}: {list_ms:.3f} ms  (target < 20 ms) {'PASS' if list_ok else 'FAIL'}")
    median_list = statistics.median([best_of(1, reg.list) for _ in range(20)])
    print(f"list of {n}, median of 20: {median_list * 1000:.3f} ms")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    return run(args.workers, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
