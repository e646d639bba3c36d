"""Whether an engine can start workers on this machine, and what to do when it cannot.

An engine is usable when the program its argv starts is installed (an executable path, or a
name on ``PATH``), a script it hands to a launcher exists, and, for a Python module run with
the hive's own interpreter (``{python} -m MODULE``), that module and what it needs can be
imported. Nothing is started and nothing is imported: a fresh install without
llm-worker-rbee or llama-cpp-python is told so at start, by ``rbee-hive detect``, and by a
spawn that fails at once, instead of a worker that crash-loops.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import string
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec

import attrs

from rbee_hive_monitor._engine import EngineSpec

LLAMA_CPP_SERVER = "llama_cpp.server"
LLAMA_CPP_SERVER_MODULES = (
    "llama_cpp",
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
"""What ``python -m llama_cpp.server`` imports: llama-cpp-python and its ``[server]`` extra."""

LLAMA_CPP_FIX = (
    "install the llama-cpp extra: pip install 'rbee-hive[llama-cpp]' (in a checkout of "
    "rbee-hive: uv sync --package rbee-hive --extra llama-cpp), then restart the hive"
)
RBEE_FIX = (
    "install llm-worker-rbee (llama-orch) beside rbee-hive or on PATH, or point "
    "--worker-binary (setting worker_binary) at it; or, without it, install "
    "rbee-hive[llama-cpp] and spawn with engine 'openai' (setting default_engine)"
)


NOT_FOUND = "WORKER_BINARY_NOT_FOUND"
NOT_EXECUTABLE = "WORKER_BINARY_NOT_EXECUTABLE"
MODULE_MISSING = "ENGINE_UNAVAILABLE"


@attrs.frozen
class EngineAvailability:
    """The answer for one engine: ``usable``, ``detail`` (the program found, or what is
    missing) and, when it is not usable, ``fix`` (what to install or configure) and ``code``
    (``WORKER_BINARY_NOT_FOUND``, ``WORKER_BINARY_NOT_EXECUTABLE`` or ``ENGINE_UNAVAILABLE``,
    the codes a launch would fail with)."""

    engine: str
    usable: bool
    detail: str
    fix: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        if self.usable:
            return f"engine {self.engine!r}: usable ({self.detail})"
        return f"engine {self.engine!r} is not usable: {self.detail}; fix: {self.fix}"


def _fields(element: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(element) if f is not None}


def _program(path: str, which: Callable[[str], str | None]) -> tuple[str | None, str, str]:
    """The executable ``path`` means, or None, why not and the code."""
    if "/" in path:
        if not os.path.isfile(path):
            return None, f"program {path} does not exist", NOT_FOUND
        if not os.access(path, os.X_OK):
            return None, f"program {path} is not executable (chmod +x it)", NOT_EXECUTABLE
        return path, path, ""
    found = which(path)
    if found is None:
        return None, f"program {path!r} is not installed (not found on PATH)", NOT_FOUND
    return found, found, ""


def _fix_for(engine: EngineSpec, module: str | None, program: str) -> str:
    if module == LLAMA_CPP_SERVER:
        return LLAMA_CPP_FIX
    if engine.readiness == "callback" and "--callback-url" in engine.argv:
        return RBEE_FIX
    return (
        f"install {program}, or correct argv of [engines.{engine.name}] in hive.toml "
        "(the first element is the program)"
    )


def engine_availability(
    engine: EngineSpec,
    *,
    python: str = sys.executable,
    which: Callable[[str], str | None] = shutil.which,
    find_module: Callable[[str], ModuleSpec | None] = importlib.util.find_spec,
) -> EngineAvailability:
    """Whether ``engine`` can start a worker here (see the module docstring); cheap enough to
    ask at every spawn, so installing the missing piece needs no restart of the hive."""
    values = {"python": python, "worker_binary": engine.worker_binary or ""}
    argv = list(engine.argv)
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
    first = argv[0]
    if not _fields(first) <= set(values):
        return EngineAvailability(engine.name, True, f"program {first!r} is chosen per worker")
    program_text = first.format_map(values)
    program, detail, code = _program(program_text, which)
    if program is None:
        return EngineAvailability(
            engine.name, False, detail, _fix_for(engine, module, program_text), code
        )
    if engine.worker_binary and any(
        "worker_binary" in _fields(a) for a in argv[1:]
    ):  # a launcher (python, taskset, ...) runs the worker program: that must exist too
        if not os.path.isfile(engine.worker_binary):
            return EngineAvailability(
                engine.name,
                False,
                f"worker program {engine.worker_binary} does not exist",
                _fix_for(engine, module, engine.worker_binary),
                NOT_FOUND,
            )
        detail = f"{engine.worker_binary} run by {program}"
    runs_this_python = os.path.realpath(program) in (os.path.realpath(python), python)
    if module is not None and not _fields(module) and runs_this_python:
        wanted = LLAMA_CPP_SERVER_MODULES if module == LLAMA_CPP_SERVER else (module,)
        missing = [name for name in wanted if not _importable(name, find_module)]
        if missing:
            return EngineAvailability(
                engine.name,
                False,
                f"Python module{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"not installed for {python}",
                _fix_for(engine, module, program_text),
                MODULE_MISSING,
            )
        detail = f"{python} -m {module}"
    return EngineAvailability(engine.name, True, detail)


def _importable(module: str, find_module: Callable[[str], ModuleSpec | None]) -> bool:
    # The top-level package only: finding a submodule would import its parent package
    # (llama_cpp loads its shared library when imported).
    try:
        return find_module(module.split(".", maxsplit=1)[0]) is not None
    except (ImportError, ValueError):
        return False
