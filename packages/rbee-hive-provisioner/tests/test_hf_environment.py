"""Hugging Face environment rules: the cache folder, offline mode and the token file are read
exactly as huggingface_hub reads them, and offline mode fails at once for a missing model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_provisioner import (
    DownloadComplete,
    DownloadError,
    DownloadFailed,
    DownloadStatus,
    HubOffline,
    ModelRef,
    Provisioner,
    ProvisionerSettings,
    hf_home,
    hf_hub_cache,
    hf_hub_offline,
)

if TYPE_CHECKING:
    from conftest import HubServer

REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
FILE = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
Settings = Callable[..., ProvisionerSettings]
Gguf = Callable[..., bytes]

# Every variable either side reads; each case below starts from none of them set.
VARIABLES = (
    "HF_HOME",
    "XDG_CACHE_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN_PATH",
    "HUGGINGFACE_CO_STAGING",
    "SOME_DISK",
)

CASES: list[dict[str, str]] = [
    {},
    {"HOME": "/home/operator"},
    {"HF_HOME": "/srv/hf"},
    {"XDG_CACHE_HOME": "/var/cache/xdg"},
    {"XDG_CACHE_HOME": "/var/cache/xdg", "HF_HOME": "/srv/hf"},
    {"XDG_CACHE_HOME": "~/xdg"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy/hub"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy/hub", "HF_HUB_CACHE": "/new/hub"},
    {"HUGGINGFACE_HUB_CACHE": "/legacy/hub", "HF_HOME": "/srv/hf"},
    {"HF_HUB_CACHE": "/new/hub", "HF_HOME": "/srv/hf", "XDG_CACHE_HOME": "/x"},
    {"HF_HUB_CACHE": "~/models"},
    {"HF_HOME": "$SOME_DISK/hf", "SOME_DISK": "/mnt/big"},
    {"HF_HUB_CACHE": "${SOME_DISK}/hub", "SOME_DISK": "/mnt/big"},
    {"HF_TOKEN_PATH": "/etc/hf/token"},
    {"HF_HOME": "/srv/hf", "HF_TOKEN_PATH": "~/token"},
    *[
        {"HF_HUB_OFFLINE": value}
        for value in ("1", "true", "TRUE", "True", "yes", "YES", "on", "On", "0", "false")
    ],
    *[{"HF_HUB_OFFLINE": value} for value in ("no", "off", "2", " 1", "y", "enabled")],
    {"TRANSFORMERS_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "yes"},
]

# One interpreter for every case: huggingface_hub computes its constants when the module
# runs, so each case sets the environment and re-runs the module with importlib.reload.
_COMPARE = """
import importlib, json, os, sys
from huggingface_hub import constants
from rbee_hive_provisioner import hf_home, hf_hub_cache, hf_hub_offline, hf_token_path
cases, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
home = os.environ["HOME"]
out = []
for case in cases:
    for name in names:
        os.environ.pop(name, None)
    os.environ["HOME"] = home
    os.environ.update(case)
    importlib.reload(constants)
    out.append({
        "hub": [os.path.abspath(constants.HF_HUB_CACHE), os.path.abspath(hf_hub_cache())],
        "home": [os.path.abspath(constants.HF_HOME), os.path.abspath(hf_home())],
        "offline": [constants.HF_HUB_OFFLINE, hf_hub_offline()],
        "token_path": [os.path.abspath(constants.HF_TOKEN_PATH), os.path.abspath(hf_token_path())],
    })
print(json.dumps(out))
"""


def test_cache_offline_and_token_rules_match_huggingface_hub() -> None:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", _COMPARE, json.dumps(CASES), json.dumps(VARIABLES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    results = json.loads(done.stdout)
    assert len(results) == len(CASES)
    for case, result in zip(CASES, results, strict=True):
        for key, (theirs, ours) in result.items():
            assert ours == theirs, f"{key} with {case}: huggingface_hub {theirs!r}, ours {ours!r}"
    # The cases do exercise every rule (not 30 copies of the default).
    assert len({r["hub"][0] for r in results}) >= 8
    assert {r["offline"][0] for r in results} == {True, False}


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one deliberate difference: huggingface_hub would use a folder relative to the
    # current directory ("huggingface/hub"), which for a daemon depends on where it started.
    monkeypatch.setenv("HOME", "/home/op")
    environ = {"HF_HOME": "", "XDG_CACHE_HOME": "", "HF_HUB_CACHE": ""}
    assert hf_home(environ) == Path("/home/op/.cache/huggingface")
    assert hf_hub_cache(environ) == Path("/home/op/.cache/huggingface/hub")
    assert hf_hub_offline({"HF_HUB_OFFLINE": ""}) is False


def test_the_cache_setting_wins_over_the_environment(tmp_path: Path) -> None:
    settings = ProvisionerSettings(state_dir=tmp_path, cache_dir=tmp_path / "models")
    assert settings.resolved_cache_dir({"HF_HUB_CACHE": "/elsewhere"}) == tmp_path / "models"
    assert (
        ProvisionerSettings(state_dir=tmp_path, offline=False).resolved_offline(
            {"HF_HUB_OFFLINE": "1"}
        )
        is False
    )


def test_the_token_of_hf_auth_login_is_used(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("hf_stored_token\n")
    settings = ProvisionerSettings(state_dir=tmp_path)
    assert settings.resolved_token({"HF_HOME": str(tmp_path)}) == "hf_stored_token"
    assert settings.resolved_token({"HF_HOME": str(tmp_path), "HF_TOKEN": "hf_env"}) == "hf_env"
    assert settings.resolved_token({"HF_HOME": str(tmp_path / "none")}) is None
    assert "hf_stored_token" not in repr(settings)


# ---------------------------------------------------------------- offline mode


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
async def test_offline_fails_at_once_for_a_missing_model_and_names_the_switch(
    hub: HubServer,
    make_settings: Settings,
    make_gguf: Gguf,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(10_000)})
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    ended: list[DownloadStatus] = []
    async with Provisioner.open(
        make_settings(max_attempts=5, backoff_base=1.0), on_download_end=ended.append
    ) as prov:
        started = time.monotonic()
        for text in (f"hf:{REPO}", f"hf:{REPO}:{FILE}"):
            with pytest.raises(HubOffline, match="HF_HUB_OFFLINE") as info:
                await prov.start_download(ModelRef.parse(text))
            assert info.value.code == "HUB_OFFLINE"
        assert time.monotonic() - started < 1.0  # no retries, no backoff
        failed = prov.downloads()
    assert hub.requests == []
    assert [s.state.code for s in failed if isinstance(s.state, DownloadError)] == [
        "HUB_OFFLINE",
        "HUB_OFFLINE",
    ]
    assert [str(s.ref) for s in ended] == [f"hf:{REPO}", f"hf:{REPO}:{FILE}"]


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0", "false", "no"])
async def test_a_false_offline_value_downloads(
    hub: HubServer,
    make_settings: Settings,
    make_gguf: Gguf,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(10_000)})
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}"))
    assert model.path.is_file()


@pytest.mark.anyio
async def test_offline_serves_a_cached_model_without_the_network(
    hub: HubServer,
    make_settings: Settings,
    make_gguf: Gguf,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = make_gguf(20_000)
    hub.add_repo(REPO, {FILE: content, "other.Q8_0.gguf": make_gguf(5_000, seed=1)})
    async with Provisioner.open(make_settings()) as prov:
        online = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    before = len(hub.requests)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # A fresh catalog (another state folder): only the shared cache knows the file, so the
    # file-less reference is resolved from the cached snapshot with the usual rule.
    fresh = make_settings(state_dir=tmp_path / "other-state")
    async with Provisioner.open(fresh) as prov:
        for text in (f"hf:{REPO}", f"hf:{REPO}:{FILE}"):
            ticket = await prov.start_download(ModelRef.parse(text))
            assert ticket.cached is not None, text
            assert ticket.cached.path == online.path
            assert ticket.cached.path.read_bytes() == content
        assert [str(m.ref) for m in await prov.list_models()] == [f"hf:{REPO}:{FILE}"]
    assert len(hub.requests) == before


@pytest.mark.anyio
async def test_every_ended_download_is_reported_once(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(10_000)})
    hub.add_repo("org/broken", {"m.Q4_K_M.gguf": make_gguf(10_000)}).files[
        "m.Q4_K_M.gguf"
    ].corrupt = 100
    ended: list[DownloadStatus] = []
    async with Provisioner.open(make_settings(max_attempts=2), on_download_end=ended.append) as p:
        await p.ensure(ModelRef.parse(f"hf:{REPO}"))
        ticket = await p.start_download(ModelRef.parse("hf:org/broken"))
        with pytest.raises(DownloadFailed):
            await p.wait(ticket.download_id)
    by_ref = {str(s.ref): s for s in ended}
    assert len(ended) == 2
    assert isinstance(by_ref[f"hf:{REPO}:{FILE}"].state, DownloadComplete)
    broken = by_ref["hf:org/broken:m.Q4_K_M.gguf"].state
    assert isinstance(broken, DownloadError)
    assert broken.code == "CHECKSUM_MISMATCH"
