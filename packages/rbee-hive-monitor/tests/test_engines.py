"""Engines: argv templates, the built-in engines, and engines from configuration."""

from __future__ import annotations

import signal
import sys

import pytest

from rbee_hive_monitor import (
    EngineSpec,
    InvalidEngine,
    engine_from_config,
    openai_engine,
    rbee_engine,
)

VALUES = {
    "worker_id": "worker-1",
    "model_path": "/models/a b.gguf",
    "model_ref": "hf:org/repo:a.gguf",
    "backend": "cuda",
    "device": "1",
    "port": "8081",
    "host": "127.0.0.1",
    "callback_url": "http://127.0.0.1:9200/v1/workers/ready/s3cr3t",
    "python": sys.executable,
}


def test_rbee_engine_passes_exactly_the_seven_flags_in_order() -> None:
    engine = rbee_engine("/opt/rbee/llm-worker-rbee")
    assert engine.render_argv(VALUES) == [
        "/opt/rbee/llm-worker-rbee",
        "--worker-id",
        "worker-1",
        "--model",
        "/models/a b.gguf",
        "--model-ref",
        "hf:org/repo:a.gguf",
        "--backend",
        "cuda",
        "--device",
        "1",
        "--port",
        "8081",
        "--callback-url",
        "http://127.0.0.1:9200/v1/workers/ready/s3cr3t",
    ]
    assert engine.readiness == "callback"
    assert engine.health_path == "/health"
    assert engine.graceful_signal == signal.SIGINT
    assert engine.shutdown_path is None


def test_rbee_engine_launcher_goes_first_verbatim() -> None:
    engine = rbee_engine("/w/fake.py", launcher=("/usr/bin/python3", "-X{x}"))
    assert engine.render_argv(VALUES)[:3] == ["/usr/bin/python3", "-X{x}", "/w/fake.py"]


def test_placeholders_are_substituted_inside_one_element_and_never_split() -> None:
    engine = EngineSpec(name="x", argv=("prog", "--model={model_path}", "{{literal}}"))
    assert engine.render_argv(VALUES) == ["prog", "--model=/models/a b.gguf", "{literal}"]


def test_openai_engine_defaults_to_llama_cpp_python_polled_on_v1_models() -> None:
    engine = openai_engine()
    assert engine.render_argv(VALUES) == [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        "/models/a b.gguf",
        "--host",
        "127.0.0.1",
        "--port",
        "8081",
    ]
    assert (engine.readiness, engine.ready_path, engine.health_path) == (
        "http",
        "/v1/models",
        "/v1/models",
    )
    assert engine.graceful_signal == signal.SIGTERM
    assert not engine.uses_callback_url


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("prog", "{port.real}"), "uses {port.real}"),
        (("prog", "{nope}"), "uses {nope}"),
        (("prog", "{port!r}"), "uses {port}"),
        (("prog", "{"), "not a valid template"),
        ((), "non-empty list"),
    ],
)
def test_bad_argv_templates_are_rejected_naming_the_engine(
    argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidEngine) as caught:
        EngineSpec(name="mine", argv=argv)
    assert "engine 'mine'" in str(caught.value)
    assert message in str(caught.value)
    assert caught.value.code == "INVALID_ENGINE"


def test_callback_readiness_needs_a_callback_url_in_argv() -> None:
    with pytest.raises(InvalidEngine, match="callback_url"):
        EngineSpec(name="cb", argv=("prog",), readiness="callback")


def test_engine_from_config_builds_a_user_defined_engine() -> None:
    engine = engine_from_config(
        "vllm",
        {
            "argv": ["vllm", "serve", "{model_path}", "--port", "{port}"],
            "ready_path": "/v1/models",
            "health_path": "/health",
            "graceful_signal": "INT",
            "shutdown_path": "/shutdown",
            "env": {"VLLM_LOGGING_LEVEL": "WARNING"},
        },
    )
    assert engine.readiness == "http"
    assert engine.graceful_signal == signal.SIGINT
    assert engine.env == {"VLLM_LOGGING_LEVEL": "WARNING"}
    assert engine.render_argv(VALUES)[2:] == ["/models/a b.gguf", "--port", "8081"]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"argv": ["x"], "stop_signal": "INT"}, "'stop_signal'"),
        ({"argv": ["x"], "readiness": "tcp"}, "'readiness'"),
        ({"argv": []}, "'argv'"),
        ({}, "'argv'"),
        ({"argv": "llama-server --port {port}"}, "not a shell command line"),
        ({"argv": ["x"], "graceful_signal": "SIGNOPE"}, "'graceful_signal'"),
        ({"argv": ["x"], "env": ["A=1"]}, "'env'"),
        ({"argv": ["x"], "health_path": "health"}, "'health_path'"),
    ],
)
def test_engine_from_config_rejects_bad_tables_naming_engine_and_key(
    config: dict[str, object], key: str
) -> None:
    with pytest.raises(InvalidEngine) as caught:
        engine_from_config("custom", config)
    assert "engine 'custom'" in str(caught.value)
    assert key in str(caught.value)
