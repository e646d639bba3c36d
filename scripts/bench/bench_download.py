"""Benchmark: rbee-hive's download (with SHA-256 verification) against curl.

Usage: ``uv run python scripts/bench/bench_download.py [--size-mib 1024] [--repeat 3]``

Serves one file from a local hub (scripts/bench/_hub_server.py, its own process) and times,
in the same run and alternating: rbee-hive's ``Provisioner.ensure`` (metadata, download,
hash while streaming, verify, rename, catalog); ``curl -o`` then ``sha256sum``; plain
``curl -o``. Prints the best time of each and the ratios (> 1.0x: rbee-hive is faster).
Then it injects a connection reset at 40 % and reports the bytes the server sent twice
(from the server's own count: what aiohttp had received but not yet handed out when the
connection broke, which its public API cannot return).
Everything lives in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from rbee_hive_provisioner import ModelRef, Provisioner, ProvisionerSettings

REPO = "bench/model-GGUF"
NAME = "model.Q4_K_M.gguf"
SERVER = Path(__file__).with_name("_hub_server.py")


def make_file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes; their SHA-256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not compressible by a pattern
    with path.open("wb") as f:
        written = 0
        counter = 0
        while written < size:
            chunk = (counter.to_bytes(8, "little") + block)[: min(len(block), size - written)]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            counter += 1
    return digest.hexdigest()


@contextmanager
def hub_server(file: Path, sha256: str, reset_at: float | None = None) -> Iterator[str]:
    """Start the hub in its own process; yield its URL."""
    argv = [sys.executable, str(SERVER), str(file), REPO, NAME, sha256]
    if reset_at is not None:
        argv += ["--reset-first-get-at", str(reset_at)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the bench hub did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def served_ranges(url: str) -> list[tuple[int, int]]:
    with urllib.request.urlopen(f"{url}/stats") as response:
        return [tuple(r) for r in json.load(response)["served"]]


def bytes_twice(ranges: list[tuple[int, int]]) -> int:
    twice = reach = 0
    for start, end in sorted(ranges):
        twice += max(0, min(end, reach) - start)
        reach = max(reach, end)
    return twice


def time_rbee(url: str, work: Path) -> float:
    """Seconds for a cold ``Provisioner.ensure`` of the file (a fresh cache and catalog)."""
    shutil.rmtree(work, ignore_errors=True)
    settings = ProvisionerSettings(
        state_dir=work / "state", cache_dir=work / "cache", endpoint=url, disk_reserve_bytes=0
    )

    async def run() -> float:
        async with Provisioner.open(settings) as prov:
            start = time.perf_counter()
            await prov.ensure(ModelRef.parse(f"hf:{REPO}:{NAME}"))
            return time.perf_counter() - start

    elapsed = anyio.run(run)
    shutil.rmtree(work, ignore_errors=True)
    return elapsed


def time_curl(url: str, work: Path, sha256: str, verify: bool) -> float:
    """Seconds for ``curl -sSfL -o`` (and ``sha256sum`` of the result when ``verify``)."""
    work.mkdir(parents=True, exist_ok=True)
    target = work / NAME
    start = time.perf_counter()
    subprocess.run(
        ["curl", "-sSfL", "-o", str(target), f"{url}/{REPO}/resolve/main/{NAME}"], check=True
    )
    if verify:
        out = subprocess.run(
            ["sha256sum", str(target)], check=True, capture_output=True, text=True
        ).stdout
        if out.split()[0] != sha256:
            raise RuntimeError("curl's file does not match the SHA-256")
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * 2**20

    with tempfile.TemporaryDirectory(prefix="rbee-bench-") as tmp:
        root = Path(tmp)
        source = root / "served.gguf"
        print(f"writing a {args.size_mib} MiB file ...", flush=True)
        sha256 = make_file(source, size)

        times: dict[str, list[float]] = {"rbee": [], "curl+sha256sum": [], "curl": []}
        with hub_server(source, sha256) as url:
            for _ in range(args.repeat):
                times["rbee"].append(time_rbee(url, root / "rbee"))
                times["curl+sha256sum"].append(time_curl(url, root / "curl", sha256, True))
                times["curl"].append(time_curl(url, root / "curl", sha256, False))

        best = {k: min(v) for k, v in times.items()}
        mib = size / 2**20
        print(f"\n{args.size_mib} MiB over loopback, best of {args.repeat}:")
        for name, seconds in best.items():
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"  {name:16s} {seconds:6.2f} s  {mib / seconds:7.0f} MiB/s   (runs: {runs})")
        print(
            f"  rbee vs curl+sha256sum: {best['curl+sha256sum'] / best['rbee']:.2f}x "
            "(target >= 1.0x)"
        )
        print(f"  rbee vs plain curl:     {best['curl'] / best['rbee']:.2f}x (goal >= 0.8x)")

        with hub_server(source, sha256, reset_at=0.4) as url:
            elapsed = time_rbee(url, root / "rbee")
            ranges = served_ranges(url)
        served = sum(end - start for start, end in ranges)
        print(
            f"\nreset at 40 %: rbee finished in {elapsed:.2f} s; the server sent {served} bytes "
            f"for a {size}-byte file; bytes fetched twice: {bytes_twice(ranges)} (at most what "
            "aiohttp held at the break)"
        )


if __name__ == "__main__":
    main()
