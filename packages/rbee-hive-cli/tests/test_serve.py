"""The daemon's hypercorn server closes a connection as soon as its client has hung up."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from rbee_hive_cli._serve import KEEP_ALIVE_SECONDS, serve_hive, server_config
from rbee_hive_http_middleware import Receive, Scope, Send

pytestmark = pytest.mark.anyio
REQUEST = b"GET /ping HTTP/1.1\r\nHost: hive\r\n\r\n"
#: Far below the keep-alive timeout: a socket still open after this was held, not closed.
PROMPTLY = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def pong(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
    )
    await send({"type": "http.response.body", "body": b"pong"})


@asynccontextmanager
async def hive_server() -> AsyncIterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_hive, pong, server_config(sock), stop.wait)
            yield sock.getsockname()
            stop.set()
    finally:
        sock.close()


async def _connect(address: tuple[str, int]) -> anyio.abc.SocketStream:
    with anyio.fail_after(5):
        while True:
            try:
                return await anyio.connect_tcp(*address)
            except OSError:
                await anyio.sleep(0.02)


async def _read_until_closed(stream: anyio.abc.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    data = b""
    with anyio.fail_after(PROMPTLY):
        while True:
            try:
                data += await stream.receive()
            except anyio.EndOfStream:
                return data


async def test_a_client_that_half_closes_after_its_request_gets_the_answer_then_eof() -> None:
    assert KEEP_ALIVE_SECONDS > PROMPTLY * 10
    async with hive_server() as address:
        for _ in range(3):
            stream = await _connect(address)
            await stream.send(REQUEST)
            await stream.send_eof()
            answer = await _read_until_closed(stream)
            assert answer.startswith(b"HTTP/1.1 200")
            assert answer.endswith(b"pong")
            await stream.aclose()


async def test_a_client_that_connects_and_hangs_up_without_a_request_is_closed_at_once() -> None:
    async with hive_server() as address:
        stream = await _connect(address)
        await stream.send_eof()
        assert await _read_until_closed(stream) == b""
        await stream.aclose()


async def test_a_client_that_hangs_up_on_an_idle_keep_alive_connection_is_closed_at_once() -> None:
    async with hive_server() as address:
        stream = await _connect(address)
        await stream.send(REQUEST)
        with anyio.fail_after(PROMPTLY):
            answer = b""
            while not answer.endswith(b"pong"):
                answer += await stream.receive()
        await anyio.sleep(0.1)  # the connection is idle now, waiting for a next request
        await stream.send_eof()
        assert await _read_until_closed(stream) == b""
        await stream.aclose()


async def test_keep_alive_still_serves_several_requests_on_one_connection() -> None:
    async with hive_server() as address:
        stream = await _connect(address)
        for _ in range(3):
            await stream.send(REQUEST)
            with anyio.fail_after(PROMPTLY):
                answer = b""
                while not answer.endswith(b"pong"):
                    answer += await stream.receive()
            assert answer.startswith(b"HTTP/1.1 200")
        await stream.aclose()
