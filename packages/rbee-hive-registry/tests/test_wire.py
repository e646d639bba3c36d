from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rbee_hive_registry
from rbee_hive_registry import (
    InvalidWorkerRecord,
    WorkerInfo,
    WorkerState,
    worker_from_json,
    worker_to_json,
    workers_from_json,
    workers_to_json,
)

MakeWorker = Callable[..., WorkerInfo]

ORIGINAL_FIELDS = [
    "id",
    "url",
    "model_ref",
    "backend",
    "device",
    "state",
    "last_activity",
    "slots_total",
    "slots_available",
    "failed_health_checks",
    "pid",
    "restart_count",
    "last_restart",
    "last_heartbeat",
]


def test_list_shape_keeps_the_original_field_names(make_worker: MakeWorker) -> None:
    body = workers_to_json([make_worker("worker-a", pid=4242)])
    assert list(body) == ["workers"]
    record = body["workers"][0]
    assert list(record)[: len(ORIGINAL_FIELDS)] == ORIGINAL_FIELDS
    assert record["state"] == "loading"
    assert record["pid"] == 4242
    assert record["last_restart"] is None


def test_timestamps_are_rfc3339_utc_strings(make_worker: MakeWorker) -> None:
    cest = timezone(timedelta(hours=2))
    worker = make_worker(last_activity=datetime(2026, 11, 27, 23, 0, 0, 5, tzinfo=cest))
    assert worker_to_json(worker)["last_activity"] == "2026-11-27T21:00:00.000005Z"


def test_round_trip_is_lossless_through_real_json(make_worker: MakeWorker) -> None:
    worker = make_worker(
        state=WorkerState.IDLE,
        pid=7,
        restart_count=2,
        last_restart=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        last_heartbeat=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        exit_code=-9,
        reason="killed by SIGKILL",
        revision=12,
    )
    text = json.dumps(workers_to_json([worker]))
    assert workers_from_json(json.loads(text)) == [worker]


@given(
    state=st.sampled_from(list(WorkerState)),
    pid=st.none() | st.integers(min_value=1, max_value=2**22),
    micros=st.integers(min_value=0, max_value=10**6 - 1),
    reason=st.none() | st.text(max_size=40),
)
def test_round_trip_holds_for_any_record(
    state: WorkerState, pid: int | None, micros: int, reason: str | None
) -> None:
    worker = WorkerInfo(
        id="worker-x",
        url="http://127.0.0.1:8090",
        model_ref="file:/models/a.gguf",
        backend="cuda",
        device=1,
        state=state,
        last_activity=datetime(2026, 5, 5, 5, 5, 5, micros, tzinfo=UTC),
        pid=pid,
        port=8090,
        reason=reason,
    )
    assert worker_from_json(json.loads(json.dumps(worker_to_json(worker)))) == worker


def test_an_unknown_state_is_rejected_with_the_choices(make_worker: MakeWorker) -> None:
    record = worker_to_json(make_worker())
    record["state"] = "zombie"
    with pytest.raises(InvalidWorkerRecord, match=r"unknown worker state 'zombie'.*idle"):
        worker_from_json(record)


def test_wrong_types_are_rejected_naming_the_field(make_worker: MakeWorker) -> None:
    record = worker_to_json(make_worker())
    record["device"] = "0"
    with pytest.raises(InvalidWorkerRecord, match="device"):
        worker_from_json(record)
    record["device"] = True
    with pytest.raises(InvalidWorkerRecord, match="device"):
        worker_from_json(record)


def test_a_timestamp_without_offset_is_rejected(make_worker: MakeWorker) -> None:
    record = worker_to_json(make_worker())
    record["last_activity"] = "2026-11-27T21:00:00"
    with pytest.raises(InvalidWorkerRecord, match="last_activity"):
        worker_from_json(record)


def test_the_list_wrapper_is_required() -> None:
    with pytest.raises(InvalidWorkerRecord, match="workers"):
        workers_from_json([])


def test_public_api_matches_all() -> None:
    exported = {n for n in dir(rbee_hive_registry) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_registry.__all__) <= exported
    modules = {"exceptions"}
    assert exported - set(rbee_hive_registry.__all__) <= modules
