"""Serve the hive's ASGI app with hypercorn, without holding sockets its clients closed.

hypercorn (0.17, 0.18) runs a keep-alive timer on every idle HTTP/1.1 connection inside the
connection's task group, and closes the socket only once that group is done. When the client
hangs up on an idle connection (the normal end of a request: curl, aiohttp, queen-rbee's
reqwest), the reader sees EOF but nobody stops the timer, so the socket sits in CLOSE-WAIT for
the whole ``keep_alive_timeout`` (75 s here). 400 such requests in a minute held 400 file
descriptors; under ``RLIMIT_NOFILE=256`` the hive then stopped accepting connections.

``serve_hive`` runs hypercorn with a connection class whose read loop, once the peer has
closed its side, stops the keep-alive timer: nothing more can arrive, so the socket is closed
as soon as any request still in flight has been answered.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable

import hypercorn.asyncio.run as hypercorn_run
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.events import Closed, Event, Updated

from rbee_hive_http_middleware import ASGIApp

#: How long an idle keep-alive connection stays open (queen-rbee's HTTP pool keeps them 90 s).
KEEP_ALIVE_SECONDS = 75.0


class PromptCloseTCPServer(TCPServer):
    """hypercorn's connection handler, but a connection the client closed is closed at once."""

    _peer_closed = False

    async def _read_data(self) -> None:
        await super()._read_data()
        # The peer sent EOF (or the read failed) and hypercorn has handled ``Closed``: the
        # keep-alive timer has nothing left to wait for, and while it runs the task group
        # that owns it keeps the socket open.
        self._peer_closed = True
        await self.idle_task.stop()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and event.idle and self._peer_closed:
            # A response to a half-closed client is complete and hypercorn would now wait
            # for a next request that can never come: close instead.
            await super().protocol_send(Closed())
            return
        await super().protocol_send(event)


def install_prompt_close() -> None:
    """Make hypercorn's asyncio worker use ``PromptCloseTCPServer`` (idempotent).

    Raises ``RuntimeError`` when the installed hypercorn is not shaped as this fix expects,
    so an upgrade cannot silently bring the descriptor leak back.
    """
    current = getattr(hypercorn_run, "TCPServer", None)
    if current is PromptCloseTCPServer:
        return
    if current is not TCPServer or not callable(getattr(TCPServer, "_read_data", None)):
        raise RuntimeError(
            "the installed hypercorn does not have the connection class this hive patches "
            "(hypercorn.asyncio.run.TCPServer._read_data); use hypercorn 0.17 or 0.18"
        )
    hypercorn_run.TCPServer = PromptCloseTCPServer  # type: ignore[attr-defined]  # imported there, not re-exported


def server_config(sock: socket.socket) -> Config:
    """hypercorn settings for the daemon, serving on the already-bound ``sock``."""
    config = Config()
    # hypercorn takes ownership of the descriptor it is given, so it gets its own copy.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler, once
    config.graceful_timeout = 3.0
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    return config


async def serve_hive(
    app: ASGIApp, config: Config, shutdown_trigger: Callable[[], Awaitable[object]]
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns, closing client-closed sockets at once."""
    install_prompt_close()
    await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]  # hypercorn types the app as its own Framework union
