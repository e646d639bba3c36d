"""The JSON error envelope that every middleware of this package answers with."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rbee_hive_http_middleware._asgi import Send


def error_body(code: str, message: str) -> bytes:
    """``{"error": {"code": CODE, "message": MESSAGE}}`` as UTF-8 JSON bytes."""
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False).encode(
        "utf-8"
    )


async def send_json_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete JSON error response (start and body) through an ASGI ``send``."""
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
