from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from rbee_hive_registry import WorkerInfo, WorkerState

T0 = datetime(2026, 11, 27, 21, 20, 0, 123456, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_worker() -> Callable[..., WorkerInfo]:
    def make(worker_id: str = "worker-a", **overrides: object) -> WorkerInfo:
        fields: dict[str, object] = {
            "id": worker_id,
            "url": "http://127.0.0.1:8081",
            "model_ref": "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
            "backend": "cpu",
            "device": 0,
            "state": WorkerState.LOADING,
            "last_activity": T0,
            "port": 8081,
        }
        fields.update(overrides)
        return WorkerInfo(**fields)  # type: ignore[arg-type]  # test factory over kwargs

    return make
