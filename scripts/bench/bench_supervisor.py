"""Benchmarks of the rbee-hive Supervisor against bare process handling, on the fake worker.

    uv run python scripts/bench/bench_supervisor.py [--runs 25] [--workers 50] [--strict]

(a) spawn overhead: spawn -> IDLE through the Supervisor (a minimal callback receiver calls
    ``mark_ready``) against ``anyio.open_process`` of the same worker plus waiting for its
    callback on a bare socket; runs alternate so drift hits both alike. Target: the hive adds
    <= 10 ms (median).
(b) crash detection: kill -9 -> the registry's change feed shows the exit. Target <= 100 ms.
(c) stop_all of N cooperative workers (they exit 0 on SIGINT). Target <= 2 s.
(d) the same spawn -> IDLE through the running daemon's HTTP API (POST /v1/workers/spawn, then
    GET /v1/workers/{id} every 2 ms until it is idle), against the bare figure of (a); the
    polling adds about 1 ms of its own, so this is an upper bound of the daemon's overhead.

Prints one PASS/FAIL line per target; ``--strict`` makes a FAIL the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.abc

from rbee_hive_monitor import (
    MonitorError,
    Supervisor,
    SupervisorSettings,
    WorkerSpec,
    rbee_engine,
)
from rbee_hive_registry import FeedLagged, WorkerRegistry, WorkerState
from rbee_hive_restart import Backoff, BreakerSettings

ROOT = Path(__file__).resolve().parents[2]
FAKE_WORKER = ROOT / "packages" / "rbee-hive-monitor" / "tests" / "fake_worker.py"
LAUNCHER = (sys.executable, "-S")  # the fake worker needs only the stdlib
# A random block of 1000 worker ports below the ephemeral range (32768+), so two runs on one
# machine (or a run next to the tests) rarely hand out the same ports.
_FIRST_PORT = random.randrange(10_000, 31_000, 1000)
PORTS = (_FIRST_PORT, _FIRST_PORT + 999)


class TinyHttp:
    """Just enough HTTP/1.1 server for the worker's POSTs: ``route(path) -> status``."""

    def __init__(self, route: Callable[[str], int]) -> None:
        self.route = route
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                while len(body) < length:
                    body += await stream.receive()
                status = self.route(lines[0].split(" ")[1])
                reply = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                await stream.send(reply.encode())


class Callbacks:
    """The HTTP layer in miniature: secret callback URLs that call ``mark_ready``."""

    def __init__(self) -> None:
        self.http = TinyHttp(self._route)
        self.supervisor: Supervisor | None = None
        self.ready: dict[str, anyio.Event] = {}
        self._secrets: dict[str, str] = {}

    def issue(self, worker_id: str) -> str:
        self._secrets[worker_id] = secret = os.urandom(8).hex()
        return f"http://127.0.0.1:{self.http.port}/cb/{worker_id}/{secret}"

    def revoke(self, worker_id: str) -> None:
        self._secrets.pop(worker_id, None)

    def _route(self, path: str) -> int:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or self._secrets.get(parts[1]) != parts[2] or self.supervisor is None:
            return 401
        try:
            if parts[3:] == ["v1", "heartbeat"]:
                self.supervisor.record_heartbeat(parts[1])
            else:
                self.supervisor.mark_ready(parts[1])  # the registry shows IDLE from here on
                self.ready.setdefault(parts[1], anyio.Event()).set()
        except MonitorError:
            return 409
        return 200


@contextlib.asynccontextmanager
async def hive(
    workdir: Path, **overrides: object
) -> AsyncIterator[tuple[Supervisor, WorkerRegistry, Callbacks]]:
    registry = WorkerRegistry(feed_capacity=4096)
    callbacks = Callbacks()
    settings = SupervisorSettings(
        log_dir=workdir / "workers",
        port_range=PORTS,
        **overrides,  # type: ignore[arg-type]
    )
    engine = rbee_engine(FAKE_WORKER, launcher=LAUNCHER)
    async with anyio.create_task_group() as tg:
        await tg.start(callbacks.http.serve)
        async with Supervisor.open(registry, settings, [engine], callbacks=callbacks) as sup:
            callbacks.supervisor = sup
            yield sup, registry, callbacks
        tg.cancel_scope.cancel()


async def wait_until(registry: WorkerRegistry, worker_id: str, ok: Callable[..., bool]) -> float:
    """anyio time at which the change feed first shows a record of the worker matching ``ok``."""
    with registry.subscribe() as feed, anyio.fail_after(30):
        current = registry.get(worker_id)
        if current is not None and ok(current):
            return anyio.current_time()
        async for item in feed:
            record = registry.get(worker_id) if isinstance(item, FeedLagged) else item.worker
            if record is not None and record.id == worker_id and ok(record):
                return anyio.current_time()
    raise RuntimeError("change feed ended")


def argv_for(worker_id: str, port: int, callback_url: str, model: Path) -> list[str]:
    return [
        *LAUNCHER,
        str(FAKE_WORKER),
        "--worker-id",
        worker_id,
        "--model",
        str(model),
        "--model-ref",
        "hf:bench/tiny:model.gguf",
        "--backend",
        "cpu",
        "--device",
        "0",
        "--port",
        str(port),
        "--callback-url",
        callback_url,
    ]


async def bench_spawn(workdir: Path, runs: int) -> tuple[list[float], ...]:
    model = workdir / "model.gguf"
    model.write_bytes(b"GGUF")
    through_hive: list[float] = []
    bare: list[float] = []
    hive_launch: list[float] = []  # spawn() called -> the process runs (started_at)
    bare_launch: list[float] = []  # open_process() called -> it returned
    arrived: dict[str, anyio.Event] = {}

    def bare_route(path: str) -> int:
        if path in arrived:
            arrived[path].set()
        return 200

    bare_http = TinyHttp(bare_route)
    async with hive(workdir) as (sup, _, callbacks), anyio.create_task_group() as tg:
        await tg.start(bare_http.serve)
        spec = WorkerSpec(model_ref="hf:bench/tiny:model.gguf")
        for run in range(-1, runs):  # run -1 warms both paths up and is not counted
            # Through the supervisor: spawn -> mark_ready has made it IDLE.
            begin, wall = anyio.current_time(), datetime.now(UTC)
            info = await sup.spawn(spec, model)
            with anyio.fail_after(30):
                await callbacks.ready.setdefault(info.id, anyio.Event()).wait()
            elapsed = anyio.current_time() - begin
            if run >= 0:
                through_hive.append(elapsed)
                assert info.started_at is not None
                hive_launch.append((info.started_at - wall).total_seconds())
            await sup.stop(info.id)
            sup.forget(info.id)
            # Bare: open_process -> the callback arrives on a plain socket.
            path = f"/ready/{run}"
            arrived[path] = anyio.Event()
            begin = anyio.current_time()
            callback_url = f"http://127.0.0.1:{bare_http.port}{path}"
            process = await anyio.open_process(
                argv_for(f"bare-{run}", PORTS[1], callback_url, model),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            launched = anyio.current_time() - begin
            with anyio.fail_after(30):
                await arrived[path].wait()
            elapsed = anyio.current_time() - begin
            if run >= 0:
                bare.append(elapsed)
                bare_launch.append(launched)
            process.kill()
            await process.wait()
        tg.cancel_scope.cancel()
    return through_hive, bare, hive_launch, bare_launch


async def bench_crash_detection(workdir: Path, runs: int) -> list[float]:
    detected: list[float] = []
    overrides = {
        "backoff": Backoff(base=0.01, cap=0.01, jitter=0.0),
        "breaker": BreakerSettings(threshold=runs + 10, window=600.0),
    }
    model = workdir / "model.gguf"
    async with hive(workdir, **overrides) as (sup, registry, _):
        info = await sup.spawn(WorkerSpec(model_ref="hf:bench/tiny:model.gguf"), model)
        for attempt in range(runs):
            await wait_until(
                registry, info.id, lambda w: w.state is WorkerState.IDLE and w.pid is not None
            )
            idle = registry.require(info.id)
            assert idle.pid is not None
            begin = anyio.current_time()
            os.kill(idle.pid, signal.SIGKILL)
            seen = await wait_until(registry, info.id, lambda w, n=attempt: w.restart_count > n)
            detected.append(seen - begin)
        await sup.stop(info.id)
    return detected


async def bench_stop_all(workdir: Path, workers: int) -> tuple[float, str]:
    model = workdir / "model.gguf"
    async with hive(workdir, early_exit_grace=0.0) as (sup, registry, _):
        spec = WorkerSpec(model_ref="hf:bench/tiny:model.gguf")
        ids = []
        limiter = anyio.CapacityLimiter(8)

        async def spawn_one() -> None:
            async with limiter:
                info = await sup.spawn(spec, model)
                ids.append(info.id)
                await wait_until(registry, info.id, lambda w: w.state is WorkerState.IDLE)
                await serving(info.port)

        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(spawn_one)
        report = await sup.stop_all(deadline=30.0)
        counts = f"{report.graceful} graceful, {report.forced} forced, {report.timed_out} timed out"
        return report.duration, counts


async def serving(port: int) -> None:
    """Until the worker accepts connections (it reports ready before it binds)."""
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.01)
                continue
            await stream.aclose()
            return


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def bench_spawn_over_http(workdir: Path, runs: int) -> list[float]:
    import aiohttp

    rbee_hive = Path(sys.executable).parent / "rbee-hive"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = workdir / "http-model.gguf"
    model.write_bytes(b"GGUF")
    env = {
        **os.environ,
        "RBEE_HIVE_LOG_LEVEL": "warning",
        "RBEE_HIVE_RAM_RESERVE": "0",
        "RBEE_HIVE_PORT_RANGE": "{}-{}".format(*PORTS),
    }
    daemon = await anyio.open_process(
        [
            str(rbee_hive),
            "daemon",
            "--addr",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(workdir / "http-state"),
            "--worker-binary",
            str(FAKE_WORKER),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    timings: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            with anyio.fail_after(30):
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(base + "/v1/health") as resp:
                            if resp.status == 200:
                                break
                    await anyio.sleep(0.05)
            body = {"model_ref": f"file:{model}", "backend": "cpu", "device": 0}
            for run in range(-1, runs):
                begin = anyio.current_time()
                async with session.post(base + "/v1/workers/spawn", json=body) as resp:
                    worker_id = (await resp.json())["worker_id"]
                with anyio.fail_after(30):
                    while True:
                        async with session.get(f"{base}/v1/workers/{worker_id}") as resp:
                            if (await resp.json())["state"] == "idle":
                                break
                        await anyio.sleep(0.002)
                if run >= 0:
                    timings.append(anyio.current_time() - begin)
                async with session.delete(f"{base}/v1/workers/{worker_id}") as resp:
                    await resp.read()
    finally:
        daemon.send_signal(signal.SIGTERM)
        with anyio.fail_after(60, shield=True):
            await daemon.wait()
    return timings


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="rbee-bench-") as tmp:
        workdir = Path(tmp)
        through_hive, bare, hive_launch, bare_launch = await bench_spawn(workdir, args.runs)
        hive_median, bare_median = statistics.median(through_hive), statistics.median(bare)
        overhead = hive_median - bare_median
        print(f"(a) spawn -> ready, {args.runs} runs each (median, min-max):")
        print(
            f"    supervisor : {ms(hive_median)} ({ms(min(through_hive))}-{ms(max(through_hive))})"
        )
        print(f"    bare       : {ms(bare_median)} ({ms(min(bare))}-{ms(max(bare))})")
        print(f"    overhead   : {ms(overhead)}, ratio {hive_median / bare_median:.3f}")
        hive_start, bare_start = statistics.median(hive_launch), statistics.median(bare_launch)
        print(
            f"    of which the launch (call -> process running): supervisor {ms(hive_start)}, "
            f"bare open_process {ms(bare_start)} (+{ms(hive_start - bare_start)})"
        )
        ok_a = overhead <= 0.010
        print(f"    {verdict(ok_a)}: hive overhead <= 10 ms (median)")

        detected = await bench_crash_detection(workdir, args.runs)
        median = statistics.median(detected)
        worst = ms(max(detected))
        print(f"(b) kill -9 -> change feed, {args.runs} runs: median {ms(median)}, max {worst}")
        ok_b = median <= 0.100
        print(f"    {verdict(ok_b)}: crash detection <= 100 ms (median)")

        duration, counts = await bench_stop_all(workdir, args.workers)
        print(f"(c) stop_all of {args.workers} cooperative workers: {duration:.3f} s ({counts})")
        ok_c = duration <= 2.0
        print(f"    {verdict(ok_c)}: stop_all <= 2 s")

        over_http = await bench_spawn_over_http(workdir, args.runs)
        http_median = statistics.median(over_http)
        print(
            f"(d) spawn -> idle through the daemon's HTTP API: median {ms(http_median)} "
            f"({ms(min(over_http))}-{ms(max(over_http))}); against bare {ms(bare_median)}: "
            f"+{ms(http_median - bare_median)} including ~1 ms of polling"
        )
    return 0 if (ok_a and ok_b and ok_c) or not args.strict else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="runs per measurement (>= 20)")
    parser.add_argument("--workers", type=int, default=50, help="workers for stop_all")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--verbose", action="store_true", help="show the supervisor's log")
    options = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(anyio.run(main, options))
