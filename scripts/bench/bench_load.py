"""Load benchmark: 100 concurrent clients for 60 s against a daemon with 100 workers.

Mix: 60 % GET /v1/workers/list, 30 % GET /v1/health, 10 % GET /metrics. Prints errors,
p50/p95/p99 latency and throughput for the hive, then for a bare Starlette app under hypercorn
serving the same bytes (measured in the same run), and the throughput ratio hive / bare
(target >= 0.8).

The load generator is wrk (Debian package ``wrk``) when it is installed: it costs the machine
little CPU, so the two servers, not the client, set the pace. Without wrk, an aiohttp
client in this process does it (``--client python``); it shares the two cores with the server
under test and makes the ratio noisier.

    uv run python scripts/bench/bench_load.py [--clients 100] [--seconds 60] [--workers 100]
                                              [--client wrk|python]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import anyio

ROOT = Path(__file__).resolve().parents[2]
FAKE_WORKER = ROOT / "packages" / "rbee-hive-monitor" / "tests" / "fake_worker.py"
RBEE_HIVE = Path(sys.executable).parent / "rbee-hive"
MIX = [("/v1/workers/list", 60), ("/v1/health", 30), ("/metrics", 10)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


async def load(base: str, clients: int, seconds: float, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    paths = [p for p, weight in MIX for _ in range(weight)]
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal errors
        local = random.Random(rng.random() + n)
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() < deadline:
                path = local.choice(paths)
                start = time.perf_counter()
                try:
                    async with session.get(base + path) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

    begin = time.monotonic()
    async with anyio.create_task_group() as tg:
        for n in range(clients):
            tg.start_soon(client, n)
    elapsed = time.monotonic() - begin
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


async def spawn_workers(base: str, model: Path, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            body = {"model_ref": f"file:{model}", "backend": "cpu", "device": 0}
            async with session.post(base + "/v1/workers/spawn", json=body) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"spawn failed: {resp.status} {await resp.text()}")
        while True:
            async with session.get(base + "/v1/workers/list") as resp:
                workers = (await resp.json())["workers"]
            if sum(w["state"] == "idle" for w in workers) == count:
                return
            await anyio.sleep(0.2)


async def capture(base: str, into: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for path, name in [
            ("/v1/workers/list", "list.json"),
            ("/v1/health", "health.json"),
            ("/metrics", "metrics.txt"),
        ]:
            async with session.get(base + path) as resp:
                (into / name).write_bytes(await resp.read())


MIX_SCRIPT = Path(__file__).with_name("_mix.lua")


def load_wrk(base: str, clients: int, seconds: float) -> dict[str, float]:
    """The same mix with wrk (one thread, ``clients`` connections)."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", str(MIX_SCRIPT), base],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, float] = json.loads(line[len("RESULT ") :])
            return parsed
    raise RuntimeError(f"wrk printed no RESULT line:\n{result.stdout}\n{result.stderr}")


def show(name: str, r: dict[str, float]) -> None:
    print(
        f"{name:<6} requests {int(r['requests']):>7}  errors {int(r['errors']):>3}  "
        f"{r['throughput']:>8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  "
        f"p99 {r['p99_ms']:6.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per target")
    parser.add_argument(
        "--client",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator (default: wrk when installed)",
    )
    args = parser.parse_args()
    per_round = args.seconds / args.rounds
    hive_rounds: list[dict[str, float]] = []
    bare_rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "tiny.gguf"
        model.write_bytes(b"GGUF")
        port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "RBEE_HIVE_MAX_WORKERS_PER_DEVICE": str(args.workers + 1),
            "RBEE_HIVE_RAM_RESERVE": "0",
            "RBEE_HIVE_LOG_LEVEL": "warning",
        }
        hive = subprocess.Popen(
            [
                str(RBEE_HIVE),
                "daemon",
                "--addr",
                f"127.0.0.1:{port}",
                "--state-dir",
                str(tmp / "state"),
                "--worker-binary",
                str(FAKE_WORKER),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "daemon.log").open("wb"),
        )
        bare = None
        try:
            wait_listening(port)
            base = f"http://127.0.0.1:{port}"
            anyio.run(spawn_workers, base, model, args.workers)
            anyio.run(capture, base, tmp)
            bare = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("_bare_app.py")),
                    str(bare_port),
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_listening(bare_port)
            # Alternate short rounds so both targets see the same machine (the hive's 100
            # worker processes exist throughout, other load on a shared machine comes and goes).
            bare_base = f"http://127.0.0.1:{bare_port}"
            for n in range(args.rounds):
                if args.client == "wrk":
                    hive_rounds.append(load_wrk(base, args.clients, per_round))
                    bare_rounds.append(load_wrk(bare_base, args.clients, per_round))
                else:
                    hive_rounds.append(anyio.run(load, base, args.clients, per_round, n))
                    bare_rounds.append(anyio.run(load, bare_base, args.clients, per_round, n))
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait(timeout=30)
            hive.send_signal(signal.SIGTERM)
            hive.wait(timeout=60)
    hive_result, bare_result = combine(hive_rounds), combine(bare_rounds)
    print(
        f"load ({args.client}): {args.clients} clients x {args.seconds:g} s per target in "
        f"{args.rounds} "
        f"alternating rounds, {args.workers} workers registered, "
        "mix 60% list / 30% health / 10% metrics"
    )
    show("hive", hive_result)
    show("bare", bare_result)
    ratios = [
        h["throughput"] / b["throughput"] for h, b in zip(hive_rounds, bare_rounds, strict=True)
    ]
    ratio = hive_result["throughput"] / bare_result["throughput"]
    ok = ratio >= 0.8 and hive_result["errors"] == 0
    print("per-round ratios: " + " ".join(f"{r:.2f}" for r in ratios))
    print(
        f"throughput ratio hive/bare: {ratio:.2f}  (target >= 0.80, no errors) "
        f"{'PASS' if ok else 'FAIL'}"
    )
    print(json.dumps({"hive": hive_result, "bare": bare_result, "ratio": ratio}))
    return 0 if ok else 1


def combine(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Totals over the rounds; latency percentiles as the median of the rounds'."""
    seconds = sum(r["requests"] / r["throughput"] for r in rounds)
    return {
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "throughput": sum(r["requests"] for r in rounds) / seconds,
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p95_ms": statistics.median(r["p95_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
    }


if __name__ == "__main__":
    sys.exit(main())
