"""Engines: how to start, ready-check, probe and stop one kind of worker program."""

from __future__ import annotations

import os
import signal
import string
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

import attrs

from rbee_hive_monitor.exceptions import InvalidEngine

Readiness = Literal["callback", "http"]
Activity = Literal["none", "slots", "metrics", "heartbeat"]
ACTIVITY_SOURCES: tuple[Activity, ...] = ("none", "slots", "metrics", "heartbeat")
"""Where the hive learns whether a worker is in use (see ``EngineSpec.activity``)."""
_ACTIVITY_PATHS = {"slots": "/slots", "metrics": "/metrics"}

PLACEHOLDERS = frozenset(
    {
        "worker_id",
        "model_path",
        "model_ref",
        "backend",
        "device",
        "port",
        "host",
        "callback_url",
        "worker_binary",
        "python",
    }
)
"""The names an argv template may use, as ``{name}``."""

_CONFIG_KEYS = (
    "argv",
    "readiness",
    "ready_path",
    "health_path",
    "graceful_signal",
    "shutdown_path",
    "env",
    "worker_binary",
    "activity",
    "activity_path",
)


def _as_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen_env(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


def _placeholders(name: str, element: str) -> set[str]:
    """The placeholders of one argv element; raises ``InvalidEngine`` for anything but
    ``{known_name}`` (no attribute access, index, conversion or format spec)."""
    found: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(element))
    except ValueError as err:
        raise InvalidEngine(
            f"engine {name!r}: key 'argv': element {element!r} is not a valid template ({err}); "
            "write a literal brace as '{{' or '}}'"
        ) from err
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            raise InvalidEngine(
                f"engine {name!r}: key 'argv': element {element!r} uses {{{field}}}; "
                f"placeholders are {{name}} with name one of: {', '.join(sorted(PLACEHOLDERS))}"
            )
        found.add(field)
    return found


@attrs.frozen(kw_only=True)
class EngineSpec:
    """How to run one kind of worker: an argv template, a readiness mode, probe paths, and how
    to ask it to stop.

    ``argv`` is a tuple of template strings; each element becomes exactly one argument
    (placeholders are substituted inside an element, never split into several), so no shell
    is ever involved. ``readiness`` is ``"callback"`` (the worker POSTs to ``{callback_url}``)
    or ``"http"`` (the supervisor polls ``ready_path`` until it answers 200).
    """

    name: str
    argv: tuple[str, ...] = attrs.field(converter=_as_tuple)
    readiness: Readiness = "http"
    ready_path: str = "/health"
    health_path: str = "/health"
    graceful_signal: int = attrs.field(default=int(signal.SIGTERM), converter=int)
    shutdown_path: str | None = None
    """If set, a POST to this path is tried before the graceful signal."""
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env, eq=False)
    worker_binary: str | None = None
    """The value of ``{worker_binary}``."""
    activity: Activity = "none"
    """Where the hive learns that a worker is in use, which the idle timeout needs:
    ``"slots"`` (llama-server's ``GET /slots``: busy while a slot ``is_processing``),
    ``"metrics"`` (llama-server's ``GET /metrics`` with ``--metrics``:
    ``llamacpp:requests_processing`` > 0), ``"heartbeat"`` (the worker's heartbeats carry its
    state) or ``"none"``: then the idle timeout never stops its workers (the supervisor says so
    at start-up), since it could not tell a busy worker from an idle one."""
    activity_path: str | None = None
    """The path probed for ``slots`` / ``metrics`` (default ``/slots`` / ``/metrics``)."""

    def __attrs_post_init__(self) -> None:
        name = self.name
        if not name:
            raise InvalidEngine("an engine needs a non-empty name")
        if not self.argv or not all(isinstance(a, str) for a in self.argv) or not self.argv[0]:
            raise InvalidEngine(
                f"engine {name!r}: key 'argv' must be a non-empty list of strings whose first "
                f"element is the program, got {list(self.argv)!r}"
            )
        used: set[str] = set()
        for element in self.argv:
            used |= _placeholders(name, element)
        if self.readiness not in ("callback", "http"):
            raise InvalidEngine(
                f"engine {name!r}: key 'readiness' must be 'callback' or 'http', "
                f"got {self.readiness!r}"
            )
        if self.readiness == "callback" and "callback_url" not in used:
            raise InvalidEngine(
                f"engine {name!r}: key 'argv' must pass {{callback_url}} to the worker when "
                "readiness is 'callback', or the worker can never report ready"
            )
        if "worker_binary" in used and not self.worker_binary:
            raise InvalidEngine(
                f"engine {name!r}: key 'worker_binary' must be set because argv uses "
                "{worker_binary}"
            )
        if self.activity not in ACTIVITY_SOURCES:
            raise InvalidEngine(
                f"engine {name!r}: key 'activity' must be one of "
                f"{', '.join(ACTIVITY_SOURCES)}, got {self.activity!r}"
            )
        for key in ("ready_path", "health_path", "shutdown_path", "activity_path"):
            path = getattr(self, key)
            if path is not None and not (isinstance(path, str) and path.startswith("/")):
                raise InvalidEngine(
                    f"engine {name!r}: key {key!r} must be a path starting with '/', got {path!r}"
                )
        if self.graceful_signal not in {int(s) for s in signal.valid_signals()}:
            raise InvalidEngine(
                f"engine {name!r}: key 'graceful_signal' {self.graceful_signal} is not a signal "
                "of this system; use e.g. 'SIGTERM' or 'SIGINT'"
            )
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
                raise InvalidEngine(
                    f"engine {name!r}: key 'env' must map variable names to strings, "
                    f"got {key!r}: {value!r}"
                )

    @property
    def activity_probe_path(self) -> str | None:
        """The path polled for activity, or None when it does not come from a probe."""
        default = _ACTIVITY_PATHS.get(self.activity)
        return None if default is None else (self.activity_path or default)

    @property
    def uses_callback_url(self) -> bool:
        """Whether the argv template hands the worker a ``{callback_url}``."""
        return any("callback_url" in _placeholders(self.name, a) for a in self.argv)

    def render_argv(self, values: Mapping[str, str]) -> list[str]:
        """The argv list for one launch: every element rendered with ``values``."""
        full = dict(values)
        if self.worker_binary is not None:
            full.setdefault("worker_binary", self.worker_binary)
        return [element.format_map(full) for element in self.argv]


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def rbee_engine(
    worker_binary: str | os.PathLike[str],
    *,
    launcher: Sequence[str] = (),
    name: str = "rbee",
) -> EngineSpec:
    """The llm-worker-rbee engine: its exact seven flags in order, readiness by callback, health
    ``GET /health``, stopped gracefully with SIGINT (it dies at once on SIGTERM).

    It has no activity source: llm-worker-rbee never reports being busy (its heartbeat carries
    only ``health_status``, its ``/v1/ready`` always says idle), so the idle timeout does not
    apply to its workers.

    ``launcher`` is put verbatim before the binary, e.g. ``("taskset", "-c", "0-3")`` or
    ``(sys.executable,)`` when the worker is a script.
    """
    return EngineSpec(
        name=name,
        argv=(
            *[_literal(part) for part in launcher],
            "{worker_binary}",
            "--worker-id",
            "{worker_id}",
            "--model",
            "{model_path}",
            "--model-ref",
            "{model_ref}",
            "--backend",
            "{backend}",
            "--device",
            "{device}",
            "--port",
            "{port}",
            "--callback-url",
            "{callback_url}",
        ),
        readiness="callback",
        health_path="/health",
        graceful_signal=signal.SIGINT,
        worker_binary=os.fspath(worker_binary),
    )


LLAMA_CPP_PYTHON_ARGV = (
    "{python}",
    "-m",
    "llama_cpp.server",
    "--model",
    "{model_path}",
    "--host",
    "{host}",
    "--port",
    "{port}",
)
"""llama-cpp-python's OpenAI-compatible server, run with the hive's own interpreter."""


def openai_engine(
    argv_template: Sequence[str] | None = None,
    ready_path: str = "/v1/models",
    *,
    name: str = "openai",
    health_path: str | None = None,
    graceful_signal: int = signal.SIGTERM,
    env: Mapping[str, str] | None = None,
    activity: Activity = "none",
) -> EngineSpec:
    """An OpenAI-compatible server (llama-cpp-python by default): ready when ``ready_path``
    answers 200, probed on ``health_path`` (default: ``ready_path``), stopped with SIGTERM.

    llama-cpp-python's server reports no activity (``activity="none"``); for llama-server pass
    ``activity="slots"`` (or ``"metrics"`` when it runs with ``--metrics``)."""
    return EngineSpec(
        name=name,
        argv=_as_tuple(argv_template or LLAMA_CPP_PYTHON_ARGV),
        readiness="http",
        ready_path=ready_path,
        health_path=health_path or ready_path,
        graceful_signal=graceful_signal,
        env=env,
        activity=activity,
    )


def _parse_signal(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        text = text if text.startswith("SIG") else f"SIG{text}"
        if text in signal.Signals.__members__:
            return int(signal.Signals[text])
    raise InvalidEngine(
        f"engine {name!r}: key 'graceful_signal' must be a signal name such as 'SIGTERM' or "
        f"'SIGINT', or its number, got {value!r}"
    )


def _optional_str(name: str, key: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidEngine(f"engine {name!r}: key {key!r} must be a string, got {value!r}")


def engine_from_config(name: str, config: Mapping[str, object]) -> EngineSpec:
    """A user-defined engine from a config table (e.g. ``[engines.NAME]`` in hive.toml).

    Keys: ``argv`` (list of strings, required), ``readiness`` (``"http"`` by default or
    ``"callback"``), ``ready_path``, ``health_path`` (both default ``"/health"``),
    ``graceful_signal`` (name or number, default SIGTERM), ``shutdown_path``, ``env`` (table of
    strings), ``worker_binary``, ``activity`` (``none``, ``slots``, ``metrics`` or
    ``heartbeat``; see ``EngineSpec.activity``) and ``activity_path``. Unknown keys are
    rejected, naming the engine and the key.
    """
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise InvalidEngine(
            f"engine {name!r}: unknown key {unknown[0]!r}; known keys: {', '.join(_CONFIG_KEYS)}"
        )
    argv = config.get("argv")
    if isinstance(argv, str):
        raise InvalidEngine(
            f"engine {name!r}: key 'argv' must be a list of strings, one per argument, not a "
            "shell command line"
        )
    if not isinstance(argv, Sequence) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidEngine(
            f"engine {name!r}: key 'argv' must be a non-empty list of strings, got {argv!r}"
        )
    env = config.get("env", {})
    if not isinstance(env, Mapping):
        raise InvalidEngine(f"engine {name!r}: key 'env' must be a table of strings, got {env!r}")
    readiness = config.get("readiness", "http")
    if readiness not in ("callback", "http"):
        raise InvalidEngine(
            f"engine {name!r}: key 'readiness' must be 'callback' or 'http', got {readiness!r}"
        )
    return EngineSpec(
        name=name,
        argv=tuple(argv),
        readiness=readiness,
        ready_path=_optional_str(name, "ready_path", config.get("ready_path")) or "/health",
        health_path=_optional_str(name, "health_path", config.get("health_path")) or "/health",
        graceful_signal=_parse_signal(name, config.get("graceful_signal", "SIGTERM")),
        shutdown_path=_optional_str(name, "shutdown_path", config.get("shutdown_path")),
        env=env,
        worker_binary=_optional_str(name, "worker_binary", config.get("worker_binary")),
        activity=_activity(name, config.get("activity", "none")),
        activity_path=_optional_str(name, "activity_path", config.get("activity_path")),
    )


def _activity(name: str, value: object) -> Activity:
    for known in ACTIVITY_SOURCES:
        if value == known:
            return known
    raise InvalidEngine(
        f"engine {name!r}: key 'activity' must be one of {', '.join(ACTIVITY_SOURCES)}, "
        f"got {value!r}"
    )
