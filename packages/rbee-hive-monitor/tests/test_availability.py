"""Whether an engine can run here: told at start, by detect, and by a spawn that fails at once."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_monitor import (
    EngineUnavailable,
    UnknownEngine,
    engine_availability,
    engine_from_config,
    openai_engine,
    rbee_engine,
)
from rbee_hive_monitor._availability import LLAMA_CPP_SERVER_MODULES

if TYPE_CHECKING:
    from conftest import OpenHive


def _nothing_on_path(_name: str) -> None:
    return None


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_missing_llm_worker_rbee_is_reported_with_the_ways_out() -> None:
    found = engine_availability(rbee_engine("llm-worker-rbee"), which=_nothing_on_path)
    assert not found.usable
    assert found.code == "WORKER_BINARY_NOT_FOUND"
    assert "'llm-worker-rbee' is not installed" in found.detail
    assert found.fix is not None
    assert "--worker-binary" in found.fix
    assert "rbee-hive[llama-cpp]" in found.fix
    assert "openai" in found.fix


def test_an_installed_worker_program_is_usable(tmp_path: Path) -> None:
    program = _executable(tmp_path / "llm-worker-rbee")
    on_path = engine_availability(rbee_engine("llm-worker-rbee"), which=lambda name: str(program))
    assert (on_path.usable, on_path.detail) == (True, str(program))
    assert engine_availability(rbee_engine(program)).usable


def test_a_program_that_is_not_executable_says_so(tmp_path: Path) -> None:
    program = tmp_path / "llm-worker-rbee"
    program.write_text("not a program")
    found = engine_availability(rbee_engine(program))
    assert (found.usable, found.code) == (False, "WORKER_BINARY_NOT_EXECUTABLE")
    assert "chmod +x" in found.detail


def test_a_worker_script_run_by_a_launcher_must_exist(tmp_path: Path) -> None:
    engine = rbee_engine(tmp_path / "worker.py", launcher=(sys.executable,))
    assert engine_availability(engine).code == "WORKER_BINARY_NOT_FOUND"
    (tmp_path / "worker.py").write_text("")
    assert engine_availability(engine).usable


def test_the_openai_engine_needs_llama_cpp_python_with_its_server_extra() -> None:
    def without(missing: str) -> Callable[[str], ModuleSpec | None]:
        def find(name: str) -> ModuleSpec | None:  # importlib.util.find_spec's stand-in
            return None if name == missing else ModuleSpec(name, None)

        return find

    for missing in ("llama_cpp", "fastapi", "sse_starlette"):
        found = engine_availability(openai_engine(), find_module=without(missing))
        assert (found.usable, found.code) == (False, "ENGINE_UNAVAILABLE"), missing
        assert missing in found.detail
        assert found.fix is not None
        assert "pip install 'rbee-hive[llama-cpp]'" in found.fix
    assert engine_availability(openai_engine(), find_module=without("nothing")).usable


def test_the_openai_engine_answer_matches_this_interpreter() -> None:
    installed = all(importlib.util.find_spec(m) is not None for m in LLAMA_CPP_SERVER_MODULES)
    assert engine_availability(openai_engine()).usable is installed


def test_a_config_engine_names_its_table(tmp_path: Path) -> None:
    engine = engine_from_config("vllm", {"argv": ["vllm-serve-nowhere", "{model_path}"]})
    found = engine_availability(engine, which=_nothing_on_path)
    assert not found.usable
    assert found.fix is not None
    assert "[engines.vllm]" in found.fix
    other_python = engine_from_config(
        "llama", {"argv": [str(_executable(tmp_path / "python3")), "-m", "nowhere"]}
    )
    # Another interpreter's modules are not looked up in this one.
    assert engine_availability(other_python).usable


@pytest.mark.anyio
async def test_the_supervisor_refuses_an_unusable_engine_before_anything_starts(
    open_hive: OpenHive, tmp_path: Path
) -> None:
    missing = rbee_engine(tmp_path / "no-such-worker", name="missing")
    async with open_hive(engines=(missing, openai_engine(["/bin/true"], name="ok"))) as hive:
        with pytest.raises(EngineUnavailable) as caught:
            hive.supervisor.check_engine("missing")
        assert caught.value.code == "WORKER_BINARY_NOT_FOUND"
        assert "no-such-worker" in str(caught.value)
        assert "fix:" in str(caught.value)
        with pytest.raises(UnknownEngine):
            hive.supervisor.check_engine("nope")
        assert hive.supervisor.check_engine("ok").name == "ok"
        assert len(hive.registry) == 0
