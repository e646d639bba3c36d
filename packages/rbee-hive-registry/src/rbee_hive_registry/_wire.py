"""The JSON shape of workers: one cattrs converter owns it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import cattrs

from rbee_hive_registry._info import WorkerInfo
from rbee_hive_registry._state import WorkerState
from rbee_hive_registry.exceptions import InvalidWorkerRecord


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: ``2026-11-27T21:20:00.123456Z``."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; the hive stores aware UTC times")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: object) -> datetime:
    """Parse an RFC 3339 timestamp with an offset into an aware UTC datetime."""
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _structure_state(value: object, _: type) -> WorkerState:
    try:
        return WorkerState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in WorkerState)
        raise ValueError(f"unknown worker state {value!r}; expected one of: {allowed}") from None


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _describe(exc: BaseException, type_: type | None) -> str:
    # Our hooks raise messages written for people; cattrs' own errors are fine as they are.
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return cattrs.v.format_exception(exc, type_)


def _explain(err: Exception, path: str) -> str:
    return "; ".join(cattrs.transform_error(err, path=path, format_exception=_describe))


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_unstructure_hook(datetime, format_timestamp)
    conv.register_structure_hook(datetime, lambda v, _: parse_timestamp(v))
    conv.register_unstructure_hook(WorkerState, lambda s: s.value)
    conv.register_structure_hook(WorkerState, _structure_state)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str, _strict_str)
    return conv


converter = _make_converter()
"""The converter that owns the wire shape of ``WorkerInfo``; reuse it, never a second one."""


def worker_to_json(worker: WorkerInfo) -> dict[str, Any]:
    """One worker as a JSON-ready dict with the original field names."""
    result: dict[str, Any] = converter.unstructure(worker)
    return result


def workers_to_json(workers: Iterable[WorkerInfo]) -> dict[str, list[dict[str, Any]]]:
    """The list shape of ``GET /v1/workers/list``: ``{"workers": [...]}``."""
    return {"workers": [worker_to_json(w) for w in workers]}


def worker_from_json(data: object) -> WorkerInfo:
    """Parse one worker; raises ``InvalidWorkerRecord`` naming each bad field."""
    try:
        return converter.structure(data, WorkerInfo)
    except Exception as err:
        raise InvalidWorkerRecord(_explain(err, "worker")) from err


def workers_from_json(data: object) -> list[WorkerInfo]:
    """Parse ``{"workers": [...]}``; raises ``InvalidWorkerRecord``."""
    if not isinstance(data, dict) or not isinstance(data.get("workers"), list):
        raise InvalidWorkerRecord('expected an object {"workers": [...]}')
    workers: list[object] = data["workers"]
    result: list[WorkerInfo] = []
    for index, item in enumerate(workers):
        try:
            result.append(converter.structure(item, WorkerInfo))
        except Exception as err:
            raise InvalidWorkerRecord(_explain(err, f"workers[{index}]")) from err
    return result
