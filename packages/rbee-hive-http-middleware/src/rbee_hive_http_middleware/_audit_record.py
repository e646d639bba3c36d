"""The audit record: event names, canonical JSON, the hash chain's hash, daily file names.

A record is one JSON object per line::

    {"actor": "token:9f86d0", "client": "10.0.0.7", "details": {...},
     "event": "auth_failure", "hash": "<64 hex>", "outcome": "denied",
     "prev": "<64 hex>", "ts": "2025-01-02T03:04:05.678901Z"}

``hash`` is SHA-256 (hex) over the canonical JSON of the record without its ``hash`` key, and
``prev`` is the ``hash`` of the record before it (``GENESIS_HASH`` for the very first one), across
files and days. Canonical JSON is exactly
``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as
UTF-8; every line in the files is written in that form.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

#: ``prev`` of the first record ever written in an audit directory.
GENESIS_HASH = "0" * 64
#: Daily file names; the date is the UTC date of every record in the file.
FILE_NAME = re.compile(r"audit-(\d{4}-\d{2}-\d{2})\.jsonl")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_STRING = 2048
_MAX_DEPTH = 8

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


class AuditEvent(enum.StrEnum):
    """The events the hive records; the value is the ``event`` field."""

    AUTH_SUCCESS = "auth_success"
    AUTH_FAILURE = "auth_failure"
    AUTH_LOCKOUT = "auth_lockout"
    WORKER_SPAWN = "worker_spawn"
    WORKER_STOP = "worker_stop"
    WORKER_KILL = "worker_kill"
    MODEL_DOWNLOAD = "model_download"
    MODEL_REMOVAL = "model_removal"
    CONFIG_LOADED = "config_loaded"
    SHUTDOWN = "shutdown"
    AUDIT_GAP = "audit_gap"


#: Events that are fsynced before ``record`` returns; the others are synced periodically.
CRITICAL_EVENTS = frozenset(
    {
        AuditEvent.AUTH_FAILURE,
        AuditEvent.AUTH_LOCKOUT,
        AuditEvent.WORKER_KILL,
        AuditEvent.CONFIG_LOADED,
        AuditEvent.SHUTDOWN,
        AuditEvent.AUDIT_GAP,
    }
)
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_event_name(event: str) -> str:
    """``event`` as a plain string, or ValueError when it is not a lower_snake_case name."""
    name = str(event)
    if _EVENT_NAME.fullmatch(name) is None:
        raise ValueError(f"audit event name {name!r} must be lower_snake_case, ≤ 64 characters")
    return name


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one serialisation the hash is computed over (and that the files hold)."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``record`` without its ``hash`` key."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def is_hash(value: object) -> bool:
    """True for a 64-digit lower-case hex string."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: ``2025-01-02T03:04:05.678901Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_name_for(day: date) -> str:
    """``audit-YYYY-MM-DD.jsonl`` for a UTC date."""
    return f"audit-{day.isoformat()}.jsonl"


def _text(value: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8; replace them so a line is always writable.
    clean = value.encode("utf-8", "replace").decode("utf-8")
    if len(clean) > _MAX_STRING:
        return f"{clean[:_MAX_STRING]}...[{len(clean) - _MAX_STRING} more characters]"
    return clean


def to_json_value(value: object, depth: int = 0) -> JSONValue:
    """``value`` as plain JSON data: details are data, never formatted or evaluated.

    Mappings and sequences are copied, strings are kept (JSON escapes control characters)
    and capped in length, non-finite floats and unknown objects become their ``str``.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _text(value)
    if depth >= _MAX_DEPTH:
        return _text(str(value))
    if isinstance(value, Mapping):
        return {_text(str(key)): to_json_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(item, depth + 1) for item in value]
    return _text(str(value))
