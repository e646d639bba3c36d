"""A raw ASGI driver (no framework, no HTTP client) and shared fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import attrs
import pytest

from rbee_hive_http_middleware import Message, Scope, Token

TOKEN_TEXT = "s3cr3t-Token_value.for~tests+0123456789/AB=="


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@attrs.frozen
class Reply:
    """What the ASGI app sent back."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    messages: list[Message]

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("ascii")
        found = [value.decode("latin-1") for key, value in self.headers if key == wanted]
        return found[0] if found else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return str(self.json()["error"]["code"])


HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def make_scope(
    *,
    method: str = "GET",
    path: str = "/v1/workers/list",
    headers: HeaderPairs = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    scope_type: str = "http",
) -> Scope:
    scope: Scope = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if scope_type == "http" else "ws",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "root_path": "",
        "headers": [(_bytes(k).lower(), _bytes(v)) for k, v in headers],
        "client": client,
        "server": ("127.0.0.1", 9200),
    }
    if scope_type == "http":
        scope["method"] = method
    return scope


async def call_app(
    app: Any,
    *,
    method: str = "GET",
    path: str = "/v1/workers/list",
    headers: HeaderPairs = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    chunks: Sequence[bytes] = (b"",),
    scope_type: str = "http",
) -> Reply:
    """Run one request through ``app`` and collect what it sends."""
    scope = make_scope(
        method=method, path=path, headers=headers, client=client, scope_type=scope_type
    )
    if scope_type == "http":
        incoming: list[Message] = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        incoming.append({"type": "http.disconnect"})
    else:
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(
        status=int(start["status"]) if start else 0,
        headers=list(start.get("headers", [])) if start else [],
        body=body,
        messages=sent,
    )


class AsgiCall(Protocol):
    async def __call__(
        self,
        app: Any,
        *,
        method: str = "GET",
        path: str = "/v1/workers/list",
        headers: HeaderPairs = (),
        client: tuple[str, int] | None = ("127.0.0.1", 50000),
        chunks: Sequence[bytes] = (b"",),
        scope_type: str = "http",
    ) -> Reply: ...


@pytest.fixture
def asgi() -> AsgiCall:
    return call_app


class InnerApp:
    """The protected application: records every scope it sees, reads the body, answers 200."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    @property
    def last_state(self) -> dict[str, Any]:
        return dict(self.scopes[-1].get("state") or {})


@pytest.fixture
def inner() -> InnerApp:
    return InnerApp()


@pytest.fixture
def token() -> Token:
    return Token(TOKEN_TEXT)


def bearer(text: str = TOKEN_TEXT) -> list[tuple[str | bytes, str | bytes]]:
    return [("authorization", f"Bearer {text}")]


@pytest.fixture
def auth_headers() -> list[tuple[str | bytes, str | bytes]]:
    return bearer()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class WallClock:
    """A UTC wall clock the test moves by hand (for audit timestamps and daily files)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()
