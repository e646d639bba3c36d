"""huggingface_hub and rbee-hive share one cache: each finds the files the other wrote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from huggingface_hub import constants, hf_hub_download

from rbee_hive_provisioner import ModelRef, Provisioner, ProvisionerSettings

if TYPE_CHECKING:
    from conftest import HubServer

pytestmark = pytest.mark.anyio

REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
FILE = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
Settings = Callable[..., ProvisionerSettings]
Gguf = Callable[..., bytes]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub read HF_HUB_OFFLINE when it was imported; rbee-hive downloads first.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.usefixtures("offline")
async def test_huggingface_hub_offline_finds_the_file_rbee_hive_wrote(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(64_000)
    hub.add_repo(REPO, {FILE: content})
    settings = make_settings()
    async with Provisioner.open(settings) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}"))
    requests = len(hub.requests)

    found = await anyio.to_thread.run_sync(
        lambda: hf_hub_download(REPO, FILE, revision="main", cache_dir=settings.cache_dir)
    )
    assert Path(found) == model.path
    assert Path(found).read_bytes() == content
    assert len(hub.requests) == requests  # offline: the file came from the cache


async def test_rbee_hive_finds_the_file_huggingface_hub_downloaded(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(64_000)
    hub.add_repo(REPO, {FILE: content})
    settings = make_settings()

    downloaded = await anyio.to_thread.run_sync(
        lambda: hf_hub_download(
            REPO, FILE, revision="main", cache_dir=settings.cache_dir, endpoint=hub.url
        )
    )
    assert Path(downloaded).read_bytes() == content
    gets = hub.cdn_gets()

    # A catalog that exists already: lookup finds the file in the cache and adopts it.
    async with Provisioner.open(make_settings(state_dir=settings.state_dir / "a")) as prov:
        pass
    async with Provisioner.open(make_settings(state_dir=settings.state_dir / "a")) as prov:
        found = await prov.lookup(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        entries = await prov.list_models()
    assert found is not None
    assert found.path == Path(downloaded)
    assert found.sha256 == hub.repos[REPO].files[FILE].sha256
    assert [e.reference for e in entries] == [f"hf:{REPO}:{FILE}"]

    # A new catalog is built from the cache on disk.
    async with Provisioner.open(make_settings(state_dir=settings.state_dir / "b")) as prov:
        entries = await prov.list_models()
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert [(e.reference, e.local_path) for e in entries] == [
        (f"hf:{REPO}:{FILE}", Path(downloaded))
    ]
    assert model.path == Path(downloaded)
    assert hub.cdn_gets() == gets  # nothing fetched twice
