"""The fake worker keeps the llm-worker-rbee quirks the supervisor must cope with."""

from __future__ import annotations

import socket
import subprocess

import anyio
import anyio.to_thread
import pytest

pytestmark = pytest.mark.anyio

FLAGS = ("--worker-id", "w", "--model", "/m.gguf", "--model-ref", "hf:a/b", "--backend", "cpu")


async def test_unknown_flag_exits_2_like_clap(fake_worker_argv: tuple[str, ...]) -> None:
    argv = [*fake_worker_argv, *FLAGS, "--device", "0", "--port", "1", "--callback-url", "x"]
    result = await anyio.run_process([*argv, "--gpu", "0"], check=False)
    assert result.returncode == 2
    result = await anyio.run_process(argv[:-2], check=False)  # a missing flag
    assert result.returncode == 2


async def test_ready_callback_comes_before_the_port_is_bound_and_a_failed_one_exits_1(
    fake_worker_argv: tuple[str, ...],
) -> None:
    with socket.socket() as probe:  # a port number nobody uses right now, for the worker
        probe.bind(("127.0.0.1", 0))
        worker_port = probe.getsockname()[1]
    listener = socket.create_server(("127.0.0.1", 0))
    cb_port = listener.getsockname()[1]
    argv = [
        *fake_worker_argv,
        *FLAGS,
        "--device",
        "0",
        "--port",
        str(worker_port),
        "--callback-url",
        f"http://127.0.0.1:{cb_port}/ready",
    ]
    with listener:
        async with await anyio.open_process(argv, stderr=subprocess.STDOUT) as process:
            connection, _ = await anyio.to_thread.run_sync(listener.accept)
            with connection:
                request = await anyio.to_thread.run_sync(connection.recv, 65536)
                assert request.startswith(b"POST /ready ")
                assert b"authorization" not in request.lower()
                # Not listening yet: it reports ready first, then binds.
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", worker_port), timeout=1).close()
                connection.sendall(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n")
            with anyio.fail_after(5):
                assert await process.wait() == 1
