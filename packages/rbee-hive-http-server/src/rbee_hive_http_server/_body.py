"""Parsing request bodies and queries at the edge: 415, 400, 422 with the field named."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import cattrs
from starlette.requests import Request

from rbee_hive_http_server.exceptions import ApiError

T = TypeVar("T")

IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _int_or_str(value: object, _: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"expected an integer or a string, got {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    # Unknown fields are ignored on purpose: queen-rbee and llm-worker-rbee send fields this
    # hive does not use, and the original accepted them.
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(int | str, _int_or_str)
    return conv


request_converter = _make_converter()
"""The one converter for request bodies."""


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


async def parse_json_body(request: Request, model: type[T]) -> T:
    """Read the body as JSON into ``model``: 415 without a JSON content type, 400 for malformed
    JSON, 422 naming each bad field."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with 'Content-Type: application/json'",
        )
    raw = await request.body()
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, "MALFORMED_JSON", f"the body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ApiError(422, "INVALID_FIELD", "the body must be a JSON object")
    try:
        return request_converter.structure(data, model)
    except Exception as err:
        problems = cattrs.transform_error(err, path="body", format_exception=_describe)
        fields = [p.rsplit(" @ ", 1)[-1].removeprefix("body.") for p in problems]
        raise ApiError(
            422,
            "INVALID_FIELD",
            "; ".join(problems),
            details={"fields": fields},
        ) from err


def check_identifier(value: str, field: str, pattern: re.Pattern[str] = IDENTIFIER) -> str:
    """Reject anything but letters, digits, '-' and '_' (422, naming the field)."""
    if not pattern.fullmatch(value):
        raise ApiError(
            422,
            "INVALID_FIELD",
            f"{field} must be 1-{pattern.pattern.split(',')[1].split('}')[0]} characters of "
            f"letters, digits, '-' and '_'; got {ascii(value)[:80]}",
            details={"fields": [field]},
        )
    return value
