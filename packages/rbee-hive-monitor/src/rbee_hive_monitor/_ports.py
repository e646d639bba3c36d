"""Worker ports: free at the OS level and held by no other worker, reserved until released."""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection

from rbee_hive_monitor.exceptions import NoFreePort

_ANY = "0.0.0.0"  # noqa: S104 - a bind test must see sockets on every interface


def port_is_free(port: int) -> bool:
    """Whether nothing on this machine holds ``port``: bind it on 0.0.0.0 without SO_REUSEADDR.

    Stricter than the worker's own bind (servers set SO_REUSEADDR): a port with connections
    still in TIME_WAIT is skipped too, which only costs moving on to the next port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_ANY, port))
        except OSError:
            return False
    return True


def port_is_reusable(port: int) -> bool:
    """Whether a worker could bind ``port`` again: bind it with SO_REUSEADDR, as servers do.

    Used for a restart on the port the worker already had: connections of the dead process
    that linger in TIME_WAIT do not count, another process bound to it does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((_ANY, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Hands out the lowest usable port of a range and remembers who holds which.

    A reservation lasts from the choice until ``release``: the supervisor releases a port only
    once its worker is terminal and its process reaped, so two launches never get the same
    port and a port is never reused while a process that held it may be alive.
    """

    def __init__(
        self,
        first: int,
        last: int,
        *,
        is_free: Callable[[int], bool] = port_is_free,
    ) -> None:
        self._first = first
        self._last = last
        self._is_free = is_free
        self._held: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<PortAllocator {self._first}-{self._last} held={len(self._held)}>"

    def reserve(self, worker_id: str, *, also_taken: Collection[int] = ()) -> int:
        """Reserve the lowest port that is not held, not in ``also_taken`` and free at the OS
        level; raises ``NoFreePort``."""
        for port in range(self._first, self._last + 1):
            if port in self._held or port in also_taken:
                continue
            if self._is_free(port):
                self._held[port] = worker_id
                return port
        raise NoFreePort(self._first, self._last)

    def hold(self, port: int, worker_id: str) -> bool:
        """Record that ``worker_id`` holds ``port`` (a process that already runs on it, e.g. an
        adopted worker's); False if another worker holds it."""
        holder = self._held.setdefault(port, worker_id)
        return holder == worker_id

    def release(self, port: int, worker_id: str) -> None:
        """Give ``port`` back if ``worker_id`` holds it; anything else is a no-op."""
        if self._held.get(port) == worker_id:
            del self._held[port]

    def holder(self, port: int) -> str | None:
        """The worker holding ``port``, or None."""
        return self._held.get(port)
