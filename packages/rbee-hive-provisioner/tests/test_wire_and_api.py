"""The public surface: exports, docstrings, error codes and the wire shape of events."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import rbee_hive_provisioner as api
from rbee_hive_provisioner import (
    DownloadComplete,
    DownloadError,
    DownloadProgress,
    ProvisionerError,
    ProvisionerSettings,
    to_wire,
)


def test_all_lists_exactly_the_public_names_and_each_has_a_docstring() -> None:
    public = {n for n in dir(api) if not n.startswith("_")} | {"__version__"}
    public -= {"exceptions"}  # the module
    assert set(api.__all__) == public
    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


def test_every_error_has_an_upper_snake_code_and_no_http_status() -> None:
    errors = [getattr(api, n) for n in api.__all__]
    errors = [e for e in errors if inspect.isclass(e) and issubclass(e, ProvisionerError)]
    codes = {e.code for e in errors if e is not ProvisionerError}
    assert {
        "INVALID_MODEL_REF",
        "MODEL_NOT_FOUND",
        "GATED_MODEL",
        "AMBIGUOUS_MODEL",
        "INSUFFICIENT_DISK",
        "DOWNLOAD_FAILED",
        "CHECKSUM_MISMATCH",
        "DOWNLOAD_STALLED",
        "UNKNOWN_DOWNLOAD",
        "MODEL_NOT_IN_CATALOG",
    } <= codes
    for error in errors:
        assert re.fullmatch(r"[A-Z]+(_[A-Z]+)*", error.code)
        assert not hasattr(error, "http_status")  # the HTTP layer owns statuses


def test_wire_shapes_have_exactly_the_documented_keys() -> None:
    assert to_wire(DownloadProgress(1024, 2048, 10.5, 0.7)) == {
        "stage": "downloading",
        "bytes_downloaded": 1024,
        "bytes_total": 2048,
        "speed_mbps": 10.5,
        "eta_seconds": 0.7,
    }
    assert to_wire(DownloadComplete(Path("/c/m.gguf"))) == {
        "stage": "complete",
        "local_path": "/c/m.gguf",
    }
    assert to_wire(DownloadError("GATED_MODEL", "set HF_TOKEN")) == {
        "stage": "error",
        "code": "GATED_MODEL",
        "message": "set HF_TOKEN",
    }


def test_settings_follow_the_hugging_face_environment_rules(tmp_path: Path) -> None:
    settings = ProvisionerSettings(state_dir=tmp_path)
    env = {"HF_HOME": "/h", "HF_ENDPOINT": "http://mirror.local/", "HF_TOKEN": "hf_x"}
    assert settings.resolved_cache_dir(env) == Path("/h/hub")
    assert settings.resolved_cache_dir({**env, "HF_HUB_CACHE": "/c"}) == Path("/c")
    assert settings.resolved_cache_dir({}) == Path("~/.cache/huggingface/hub").expanduser()
    assert settings.resolved_endpoint(env) == "http://mirror.local"
    assert settings.resolved_endpoint({}) == "https://huggingface.co"
    assert settings.resolved_token(env) == "hf_x"
    explicit = ProvisionerSettings(state_dir=tmp_path, cache_dir="/x", token="hf_secret")
    assert explicit.resolved_cache_dir(env) == Path("/x")
    assert "hf_secret" not in repr(explicit)
    assert explicit.quantization_preference == ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0")
