#!/usr/bin/env python3
"""End-to-end check of GPU admission and attribution, for a machine with an NVIDIA GPU.

Starts the daemon with scripts/gpu_worker_fixture.py as its worker binary, then:

1. spawns one cuda worker on device 0 (the fixture holds GPU_FIXTURE_GIB GiB, default 4);
2. checks that GET /v1/devices attributes the VRAM to the worker's PID (and worker id);
3. checks that GET /v1/capacity for that model now answers with the measured figure;
4. checks that spawning a model larger than the GPU (a sparse file) is refused with
   INSUFFICIENT_VRAM and starts nothing;
5. stops the worker and checks that its VRAM is released;
6. stops the daemon with SIGTERM and checks it exits 0.

Prints PASS/FAIL for each check and exits 1 if any failed.

    uv run python scripts/gpu_check.py [--hive-cmd "rbee-hive"] [--keep]

Set LLORCH_API_TOKEN to run the daemon with a token (the script then sends it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIB = 1024**3
REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "scripts" / "gpu_worker_fixture.py"


class Hive:
    """A running daemon and a tiny JSON client of its API."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], deadline_s: float) -> Any:
    """Poll ``probe`` until it returns something truthy; the daemon offers no event to await."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        try:
            last = probe()
        except (urllib.error.URLError, OSError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.25)
    raise TimeoutError(f"{what}: not within {deadline_s:.0f} s (last: {last!r})")


def gpu0(devices: Any) -> dict[str, Any]:
    gpus = devices.get("gpus") or []
    if not gpus:
        raise AssertionError(f"/v1/devices lists no GPU: {devices!r}")
    gpu: dict[str, Any] = gpus[0]
    return gpu


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def record(self, name: str, ok: bool, detail: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'}: {name}: {detail}", flush=True)
        if not ok:
            self.failed += 1


def run(args: argparse.Namespace, workdir: Path, checks: Checks) -> None:
    port = free_port()
    token = os.environ.get("LLORCH_API_TOKEN") or None
    state_dir = workdir / "state"
    log_path = workdir / "daemon.log"
    command = [
        *shlex.split(args.hive_cmd),
        "daemon",
        "--addr",
        f"127.0.0.1:{port}",
        "--state-dir",
        str(state_dir),
        "--worker-binary",
        str(FIXTURE),
    ]
    env = {**os.environ, "GPU_FIXTURE_GIB": str(args.gib), "GPU_FIXTURE_HEARTBEAT_S": "5"}
    print(f"starting: {shlex.join(command)} (log: {log_path})", flush=True)
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    hive = Hive(f"http://127.0.0.1:{port}", token)
    worker_id: str | None = None
    try:

        def healthy() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"the daemon exited with {daemon.returncode} at start-up")
            return hive.call("GET", "/v1/health")[0] == 200

        wait_for("daemon health", healthy, 60)
        status, devices = hive.call("GET", "/v1/devices")
        before = gpu0(devices)
        print(
            f"GPU 0: {before['name']} {before['uuid']}, "
            f"{before['memory_free_bytes'] / GIB:.2f} GiB free before the spawn",
            flush=True,
        )

        model = workdir / "small.gguf"
        model.write_bytes(b"GGUF" + bytes(1024 * 1024))
        model_ref = f"file:{model}"
        status, spawned = hive.call(
            "POST",
            "/v1/workers/spawn",
            {"model_ref": model_ref, "backend": "cuda", "device": 0, "model_path": ""},
        )
        if status >= 300 or not isinstance(spawned, dict) or "worker_id" not in spawned:
            checks.record("spawn a cuda worker", False, f"HTTP {status}: {spawned!r}")
            return
        worker_id = str(spawned["worker_id"])

        def idle_worker() -> dict[str, Any] | None:
            _, worker = hive.call("GET", f"/v1/workers/{worker_id}")
            if isinstance(worker, dict) and worker.get("state") in ("failed", "stopped"):
                raise AssertionError(f"worker ended up {worker.get('state')}: {worker!r}")
            ready = isinstance(worker, dict) and worker.get("state") == "idle" and worker.get("pid")
            return worker if ready else None

        worker = wait_for("worker ready", idle_worker, 120)
        pid = int(worker["pid"])
        checks.record("spawn a cuda worker", True, f"{worker_id} ready with PID {pid}")

        # 2. attribution
        _, devices = hive.call("GET", "/v1/devices")
        during = gpu0(devices)
        mine = [p for p in during.get("processes", []) if p.get("pid") == pid]
        used = mine[0].get("used_bytes") if mine else None
        checks.record(
            "VRAM attributed to the worker's PID",
            bool(mine) and used is not None and used >= args.gib * GIB,
            f"processes={during.get('processes')!r}, expected PID {pid} with >= {args.gib} GiB",
        )
        checks.record(
            "the PID is mapped to the worker id",
            bool(mine) and mine[0].get("worker_id") == worker_id,
            f"worker_id={mine[0].get('worker_id') if mine else None!r}, expected {worker_id!r}",
        )

        # 3. the measured figure drives capacity
        query = urllib.parse.urlencode({"model_ref": model_ref, "backend": "cuda", "device": 0})
        status, capacity = hive.call("GET", f"/v1/capacity?{query}")
        ok = (
            status == 200
            and isinstance(capacity, dict)
            and capacity.get("basis") == "measured"
            and used is not None
            and capacity.get("required_bytes") == used
        )
        checks.record(
            "capacity uses the measured figure",
            ok,
            f"HTTP {status}: {capacity!r}; measured {used!r}",
        )

        # 4. a model larger than the GPU is refused
        huge = workdir / "huge.gguf"
        with huge.open("wb") as handle:
            handle.write(b"GGUF")
        os.truncate(huge, int(before["memory_total_bytes"]) * 2)  # sparse: no disk used
        status, refused = hive.call(
            "POST",
            "/v1/workers/spawn",
            {"model_ref": f"file:{huge}", "backend": "cuda", "device": 0, "model_path": ""},
        )
        code = refused.get("error", {}).get("code") if isinstance(refused, dict) else None
        _, listed = hive.call("GET", "/v1/workers/list")
        workers = listed.get("workers", []) if isinstance(listed, dict) else []
        started = [w for w in workers if w.get("model_ref") == f"file:{huge}" and w.get("pid")]
        checks.record(
            "a model larger than the GPU is refused with INSUFFICIENT_VRAM",
            400 <= status < 600 and code == "INSUFFICIENT_VRAM" and not started,
            f"HTTP {status}: {refused!r}",
        )

        # 5. stop the worker: VRAM released
        status, _ = hive.call("DELETE", f"/v1/workers/{worker_id}")

        def released() -> dict[str, Any] | None:
            gpu = gpu0(hive.call("GET", "/v1/devices")[1])
            gone = all(p.get("pid") != pid for p in gpu.get("processes", []))
            back = gpu["memory_free_bytes"] >= before["memory_free_bytes"] - GIB // 4
            return gpu if gone and back else None

        try:
            after = wait_for("VRAM released", released, 60)
            checks.record(
                "stopping the worker releases its VRAM",
                status < 300,
                f"DELETE answered {status}; {after['memory_free_bytes'] / GIB:.2f} GiB free again",
            )
            worker_id = None
        except TimeoutError as err:
            checks.record("stopping the worker releases its VRAM", False, str(err))
    except (AssertionError, TimeoutError, KeyError, TypeError) as err:
        checks.record("the check ran to its end", False, f"{type(err).__name__}: {err}")
    finally:
        if worker_id is not None:
            hive.call("DELETE", f"/v1/workers/{worker_id}")
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=45)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
        checks.record("the daemon stops on SIGTERM with exit 0", code == 0, f"exit {code}")
        if checks.failed:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
            print("---- daemon log (last 40 lines) ----", *tail, sep="\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hive-cmd",
        default=shutil.which("rbee-hive") or f"{shlex.quote(sys.executable)} -m rbee_hive_cli",
        help="how to run rbee-hive (default: rbee-hive on PATH)",
    )
    parser.add_argument("--gib", type=float, default=4.0, help="GiB the fixture worker holds")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    checks = Checks()
    workdir = Path(tempfile.mkdtemp(prefix="rbee-gpu-check-"))
    try:
        run(args, workdir, checks)
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'FAIL' if checks.failed else 'PASS'}: {checks.failed} check(s) failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
