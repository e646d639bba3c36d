"""CLI start-up benchmark: ``rbee-hive --version`` and ``rbee-hive --help`` wall time.

rbee-keeper runs the CLI over SSH, so its start-up is paid on every remote command. Each
case is a fresh interpreter started the way the console script starts it (``from rbee_hive_cli
import main; main()``), timed from spawn to exit; the baseline is ``python -c pass`` in the
same run. Prints the median of each in ms and the ratio to the baseline.
Targets: --version <= 150 ms, --help <= 250 ms (absolute, on an idle machine).

The children may write ``.pyc`` files even where ``PYTHONDONTWRITEBYTECODE`` is set, as on any
ordinary installation (pip compiles at install time; Python caches on first import); without
them every run recompiles click and the CLI from source, which is what ``--no-bytecode``
measures.

    uv run python scripts/bench/bench_cli_startup.py [--rounds 15] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES: dict[str, list[str]] = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "rbee-hive --version": [
        sys.executable,
        "-c",
        "from rbee_hive_cli import main; main(prog_name='rbee-hive')",
        "--version",
    ],
    "rbee-hive --help": [
        sys.executable,
        "-c",
        "from rbee_hive_cli import main; main(prog_name='rbee-hive')",
        "--help",
    ],
    "rbee-hive workers --help": [
        sys.executable,
        "-c",
        "from rbee_hive_cli import main; main(prog_name='rbee-hive')",
        "workers",
        "--help",
    ],
}
TARGETS_MS = {"rbee-hive --version": 150.0, "rbee-hive --help": 250.0}


def wall_ms(argv: list[str], env: dict[str, str]) -> float:
    """One run of ``argv`` from spawn to exit, in ms."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is"
    )
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"bytecode cache: {'as the environment says' if args.no_bytecode else 'on'}")
    for argv in CASES.values():  # warm the page cache and the .pyc files
        wall_ms(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):  # interleaved, so load on the machine hits every case alike
        for name, argv in CASES.items():
            samples[name].append(wall_ms(argv, env))
    baseline = statistics.median(samples["python -c pass (baseline)"])
    print(f"{'case':<28} {'median ms':>10} {'min ms':>8} {'x baseline':>11}  target")
    failed = False
    for name, values in samples.items():
        median = statistics.median(values)
        target = TARGETS_MS.get(name)
        verdict = ""
        if target is not None:
            ok = median <= target
            failed |= not ok
            verdict = f"<= {target:.0f} ms {'ok' if ok else 'MISSED'}"
        print(
            f"{name:<28} {median:>10.1f} {min(values):>8.1f} {median / baseline:>11.2f}  {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
