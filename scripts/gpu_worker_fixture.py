#!/usr/bin/env python3
"""A stand-in worker for GPU checks that follows the llm-worker-rbee contract.

    gpu_worker_fixture.py --worker-id ID --model PATH --model-ref REF --backend cuda
                          --device 0 --port 8081 --callback-url URL

It "loads a model" by holding GPU_FIXTURE_GIB GiB (default 4) on CUDA device 0 (with torch
if it is installed, else through the CUDA driver API; the hive pins the GPU with
CUDA_VISIBLE_DEVICES, so device 0 is the one it chose), or in RAM for --backend cpu. Then it
serves GET /health on the port, POSTs {worker_id, url, model_ref, backend, device} to the
callback URL (exit 1 if that fails, like the real worker), heartbeats to
<callback_url>/v1/heartbeat every GPU_FIXTURE_HEARTBEAT_S seconds (default 30), and exits 0
on SIGTERM or SIGINT. Standard library only, apart from the optional torch.

Unlike the real worker it binds its port before the callback, so the hive never sees the
short window in which a "ready" worker does not listen yet.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GIB = 1024**3


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="rbee worker stand-in that holds GPU memory")
    for flag in ("--worker-id", "--model", "--model-ref", "--backend", "--callback-url"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--device", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def hold_with_torch(size: int) -> Any:
    import torch  # type: ignore[import-not-found]  # optional: GPU machines have it

    tensor = torch.empty(size, dtype=torch.uint8, device="cuda:0")
    tensor.fill_(1)
    torch.cuda.synchronize()
    return tensor


def hold_with_driver_api(size: int) -> Any:
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(result: int, what: str) -> None:
        if result != 0:
            raise RuntimeError(f"{what} failed with CUresult {result}")

    device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    check(cuda.cuInit(0), "cuInit")
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
    check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(size)), "cuMemAlloc")
    return (cuda, context, pointer)


def hold_memory(backend: str, size: int) -> Any:
    if backend != "cuda":
        return bytearray(size)  # zero-filled, so resident
    try:
        return hold_with_torch(size)
    except ImportError:
        return hold_with_driver_api(size)


def post_json(url: str, body: dict[str, Any], timeout: float) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def health_handler(held_bytes: int) -> type[BaseHTTPRequestHandler]:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/health":
                self.send_error(404)
                return
            body = json.dumps({"status": "healthy", "vram_bytes": held_bytes}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Health


def heartbeats(args: argparse.Namespace, interval: float, stop: threading.Event) -> None:
    url = f"{args.callback_url}/v1/heartbeat"
    while True:
        beat = {
            "worker_id": args.worker_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "health_status": "healthy",
        }
        try:
            post_json(url, beat, timeout=5)
        except (urllib.error.URLError, OSError) as err:
            print(f"heartbeat to {url} failed: {err}", file=sys.stderr, flush=True)
        if stop.wait(interval):
            return


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    size = int(float(os.environ.get("GPU_FIXTURE_GIB", "4")) * GIB)
    interval = float(os.environ.get("GPU_FIXTURE_HEARTBEAT_S", "30"))
    try:
        held = hold_memory(args.backend, size)
    except Exception as err:
        print(f"Error: could not hold {size} bytes on {args.backend}: {err}", file=sys.stderr)
        return 1

    host = os.environ.get("RBEE_WORKER_HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, args.port), health_handler(size))
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()

    ready = {
        "worker_id": args.worker_id,
        "url": f"http://{host}:{args.port}",
        "model_ref": args.model_ref,
        "backend": args.backend,
        "device": args.device,
    }
    try:
        status = post_json(args.callback_url, ready, timeout=10)
    except (urllib.error.URLError, OSError) as err:
        print(f"Error: ready callback to {args.callback_url} failed: {err}", file=sys.stderr)
        server.shutdown()
        return 1
    print(f"ready: held {size} bytes on {args.backend}, callback answered {status}", flush=True)

    beating = threading.Thread(target=heartbeats, args=(args, interval, stop), daemon=True)
    beating.start()
    serving.join()
    server.server_close()
    del held
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
