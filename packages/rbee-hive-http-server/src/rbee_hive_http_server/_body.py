"""Parsing request bodies and queries at the edge: 415, 400, 422 with the field named."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from starlette.requests import Request

from rbee_hive_http_server._wire import (
    IDENTIFIER_PATTERN,
    WORKER_ID_PATTERN,
    describe_error,
    from_json,
)
from rbee_hive_http_server.exceptions import ApiError

T = TypeVar("T")

IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
WORKER_ID = re.compile(WORKER_ID_PATTERN)


async def parse_json_body(request: Request, model: type[T]) -> T:
    """Read the body as JSON into the wire class ``model``: 415 without a JSON content type,
    400 for malformed JSON, 422 naming each bad field."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with 'Content-Type: application/json'",
        )
    raw = await request.body()
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError("MALFORMED_JSON", f"the body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ApiError("INVALID_FIELD", "the body must be a JSON object")
    try:
        return from_json(data, model)
    except Exception as err:
        problems = describe_error(err, "body")
        fields = [p.rsplit(" @ ", 1)[-1].removeprefix("body.") for p in problems]
        raise ApiError("INVALID_FIELD", "; ".join(problems), details={"fields": fields}) from err


def check_identifier(value: str, field: str, pattern: re.Pattern[str] = IDENTIFIER) -> str:
    """Reject anything but letters, digits, '-' and '_' (422, naming the field)."""
    if not pattern.fullmatch(value):
        raise ApiError(
            "INVALID_FIELD",
            f"{field} must be 1-{pattern.pattern.split(',')[1].split('}')[0]} characters of "
            f"letters, digits, '-' and '_'; got {ascii(value)[:80]}",
            details={"fields": [field]},
        )
    return value
