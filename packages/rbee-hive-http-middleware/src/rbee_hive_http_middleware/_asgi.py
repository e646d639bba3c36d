"""The few ASGI types the middlewares need; defined here so no web framework is imported."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of the (lower-case) header ``name`` in ``scope``, in arrival order."""
    return [value for key, value in scope.get("headers", ()) if key == name]


def scope_state(scope: Scope) -> MutableMapping[str, Any]:
    """The request's ``scope["state"]`` dict, created if the server did not provide one."""
    state = scope.get("state")
    if state is None:
        state = {}
        scope["state"] = state
    return state
