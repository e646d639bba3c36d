"""Settings, specs, ports and the public surface."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import rbee_hive_monitor
from rbee_hive_monitor import (
    InvalidSupervisorSetting,
    InvalidWorkerSpec,
    NoFreePort,
    SupervisorSettings,
    WorkerSpec,
    mask_url,
    port_is_free,
)
from rbee_hive_monitor._ports import PortAllocator


def test_public_names_match_all() -> None:
    exported = {n for n in dir(rbee_hive_monitor) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_monitor.__all__) == exported - {"exceptions"}
    for name in rbee_hive_monitor.__all__:
        assert getattr(rbee_hive_monitor, name).__doc__ or name.isupper()


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"port_range": (9000, 8081)}, "port_range"),
        ({"port_range": (0, 10)}, "port_range"),
        ({"probe_interval": 0}, "probe_interval"),
        ({"stop_timeout": -1}, "stop_timeout"),
        ({"probe_failure_threshold": 0}, "probe_failure_threshold"),
        ({"early_exit_grace": -0.1}, "early_exit_grace"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"worker_host": "http://x"}, "worker_host"),
        ({"loading_timeout": float("inf")}, "loading_timeout"),
    ],
)
def test_out_of_range_settings_are_rejected_naming_the_setting(
    overrides: dict[str, object], setting: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidSupervisorSetting) as caught:
        SupervisorSettings(log_dir=tmp_path, **overrides)  # type: ignore[arg-type]
    assert f"setting {setting} " in str(caught.value)


def test_default_settings_follow_the_original_port_range(tmp_path: Path) -> None:
    settings = SupervisorSettings(log_dir=tmp_path)
    assert settings.port_range == (8081, 9000)
    assert settings.worker_host == settings.bind_host == "127.0.0.1"
    assert settings.idle_timeout is None


@pytest.mark.parametrize("worker_id", ["../etc", "a/b", "", "x" * 257, "a b"])
def test_worker_ids_that_are_not_plain_identifiers_are_rejected(worker_id: str) -> None:
    with pytest.raises(InvalidWorkerSpec):
        WorkerSpec(model_ref="hf:a/b", worker_id=worker_id)


def test_port_allocator_gives_the_lowest_free_port_and_skips_busy_ones() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        busy = squatter.getsockname()[1]
        assert not port_is_free(busy)
        allocator = PortAllocator(busy, busy + 3, is_free=lambda p: p != busy and p != busy + 2)
        assert allocator.reserve("w1") == busy + 1
        assert allocator.reserve("w2") == busy + 3
        with pytest.raises(NoFreePort) as caught:
            allocator.reserve("w3")
        message = str(caught.value)
        assert f"{busy}-{busy + 3}" in message
        assert "port_range" in message
        allocator.release(busy + 1, "someone-else")
        assert allocator.holder(busy + 1) == "w1"
        allocator.release(busy + 1, "w1")
        with pytest.raises(NoFreePort):
            allocator.reserve("w3", also_taken={busy + 1})
        assert allocator.reserve("w3") == busy + 1


def test_mask_url_hides_path_query_and_userinfo() -> None:
    assert mask_url("http://u:pw@127.0.0.1:9200/v1/workers/ready/abc?t=1") == (
        "http://127.0.0.1:9200/***"
    )


def test_a_worker_pinned_to_one_gpu_is_told_device_0() -> None:
    pinned = WorkerSpec(
        model_ref="m", backend="cuda", device=3, env={"CUDA_VISIBLE_DEVICES": "GPU-1"}
    )
    assert pinned.device == 3
    assert pinned.visible_device == 0
    assert WorkerSpec(model_ref="m", backend="cuda", device=3).visible_device == 3
    cpu = WorkerSpec(model_ref="m", env={"CUDA_VISIBLE_DEVICES": ""})
    assert cpu.visible_device == 0
