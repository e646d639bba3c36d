#!/usr/bin/env python3
"""A stand-in for llm-worker-rbee that speaks its contract, quirks included. Stdlib only.

Run it as ``python fake_worker.py --worker-id ID --model PATH --model-ref REF --backend B
--device N --port P --callback-url URL`` (exactly these seven flags; anything else exits 2).

Like the real worker it loads, POSTs its ready callback (no Authorization header) BEFORE it
binds its port, exits 1 if the callback is not answered 2xx, heartbeats to
``<callback-url>/v1/heartbeat``, serves ``GET /health`` and ``GET /v1/ready``, dies at once on
SIGTERM (default disposition) and exits 0 on SIGINT. A callback URL containing
``localhost:9999`` skips the callback and heartbeats (the real worker's test mode).

Environment:
  FAKE_WORKER_MODE        normal | crash_after | hang | no_callback | unhealthy | exit_now
  FAKE_WORKER_LOAD_S      seconds of "model loading" before the callback (default 0)
  FAKE_WORKER_CRASH_AFTER_S  for crash_after: seconds after the callback before exit 1 (default 1)
  FAKE_WORKER_HEARTBEAT_S    seconds between heartbeats (default 30)
  FAKE_WORKER_BUSY_FILE   a path: while it exists the worker is busy, as llama-server reports it
                          at ``GET /slots`` (``is_processing``) and ``GET /metrics``
                          (``llamacpp:requests_processing``)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("normal", "crash_after", "hang", "no_callback", "unhealthy", "exit_now")


def _log(message: str) -> None:
    print(f"fake-worker[{os.getpid()}]: {message}", flush=True)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llm-worker-rbee", allow_abbrev=False)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--model-ref", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device", required=True, type=int)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--callback-url", required=True)
    return parser.parse_args(argv)  # exits 2 on unknown or missing flags, as clap does


def _post(url: str, body: dict[str, object], timeout: float | None) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def _heartbeats(args: argparse.Namespace, every: float) -> None:
    url = f"{args.callback_url}/v1/heartbeat"
    while True:
        body = {
            "worker_id": args.worker_id,
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "health_status": "healthy",
        }
        try:
            _post(url, body, timeout=5)
        except (OSError, urllib.error.URLError) as err:
            _log(f"heartbeat failed: {err}")
        time.sleep(every)


def _busy() -> bool:
    path = os.environ.get("FAKE_WORKER_BUSY_FILE", "")
    return bool(path) and os.path.exists(path)


def _handler(mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slots":
                self._send(200, [{"id": 0, "is_processing": _busy()}])
            elif self.path == "/metrics":
                data = f"llamacpp:requests_processing {int(_busy())}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/health":
                if mode == "unhealthy":
                    self._send(500, {"status": "unhealthy", "vram_bytes": 0})
                else:
                    self._send(200, {"status": "healthy", "vram_bytes": 0})
            elif self.path == "/v1/ready":
                self._send(200, {"ready": True, "state": "idle", "model_loaded": True})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            self._send(404, {"error": "not found"})

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str]) -> int:
    args = _parse(argv)
    mode = os.environ.get("FAKE_WORKER_MODE", "normal")
    if mode not in MODES:
        _log(f"unknown FAKE_WORKER_MODE {mode!r}; expected one of {', '.join(MODES)}")
        return 2
    _log(f"worker {args.worker_id} starting in mode {mode} on port {args.port}")
    if mode == "exit_now":
        _log("Error: exiting at once (FAKE_WORKER_MODE=exit_now)")
        return 1
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(float(os.environ.get("FAKE_WORKER_LOAD_S", "0")))

    test_mode = "localhost:9999" in args.callback_url
    if mode != "no_callback" and not test_mode:
        body = {
            "worker_id": args.worker_id,
            "url": f"http://localhost:{args.port}",
            "model_ref": args.model_ref,
            "backend": args.backend,
            "device": args.device,
        }
        try:
            status = _post(args.callback_url, body, timeout=None)
        except (OSError, urllib.error.URLError) as err:
            _log(f"Error: ready callback failed: {err}")
            return 1
        if not 200 <= status < 300:
            _log(f"Error: ready callback answered {status}")
            return 1
    # Threads started from here on must not take SIGINT: a signal handled by a helper thread
    # would leave the main thread asleep and the graceful stop unnoticed.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if mode != "no_callback" and not test_mode:
        every = float(os.environ.get("FAKE_WORKER_HEARTBEAT_S", "30"))
        threading.Thread(target=_heartbeats, args=(args, every), daemon=True).start()

    if mode == "crash_after":
        delay = float(os.environ.get("FAKE_WORKER_CRASH_AFTER_S", "1"))
        crash = threading.Timer(delay, lambda: os._exit(1))
        crash.daemon = True
        crash.start()

    stop = threading.Event()
    if mode != "hang":
        # Like the real worker: SIGINT is graceful only once it is about to serve; before that the
        # default disposition applies. SIGTERM always keeps its default: immediate death.
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server = ThreadingHTTPServer(("0.0.0.0", args.port), _handler(mode))
    except OSError as err:
        _log(f"Error: cannot bind port {args.port}: {err}")
        return 1
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _log(f"serving on port {args.port}")
    while not stop.wait(3600):
        pass
    _log("SIGINT: shutting down gracefully")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
