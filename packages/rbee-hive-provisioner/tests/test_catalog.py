"""The catalog: durable, migrated, rebuilt from the cache when corrupt; remove and verify."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_provisioner import (
    MIGRATIONS,
    Catalog,
    ModelNotInCatalog,
    ModelRef,
    Provisioner,
    ProvisionerSettings,
)

if TYPE_CHECKING:
    from conftest import HubServer

pytestmark = pytest.mark.anyio

REPO = "org/tiny-GGUF"
FILE = "tiny.Q4_K_M.gguf"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
Settings = Callable[..., ProvisionerSettings]
Gguf = Callable[..., bytes]


async def download(settings: ProvisionerSettings, *refs: str) -> None:
    async with Provisioner.open(settings) as prov:
        for ref in refs:
            await prov.ensure(ModelRef.parse(ref))


async def test_catalog_uses_wal_and_records_its_schema_version(
    make_settings: Settings, tmp_path: Path
) -> None:
    settings = make_settings()
    async with Provisioner.open(settings):
        pass
    conn = sqlite3.connect(settings.state_dir / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["garbage", "torn page"])
async def test_corrupt_catalog_is_moved_aside_and_rebuilt_from_the_cache(
    hub: HubServer,
    make_settings: Settings,
    make_gguf: Gguf,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(40_000)})
    settings = make_settings()
    await download(settings, f"hf:{REPO}:{FILE}")
    path = settings.state_dir / "catalog.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all" * 100)
    else:
        data = bytearray(path.read_bytes())
        data[100:4096] = b"\xff" * (4096 - 100)  # past the header: the schema page is torn
        path.write_bytes(bytes(data))
    for leftover in (path.with_name("catalog.sqlite-wal"), path.with_name("catalog.sqlite-shm")):
        leftover.unlink(missing_ok=True)

    caplog.set_level("WARNING")
    async with Provisioner.open(settings) as prov:
        entries = await prov.list_models()
        found = await prov.lookup(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert [e.reference for e in entries] == [f"hf:{REPO}:{FILE}"]
    assert found is not None
    assert found.sha256 == hub.repos[REPO].files[FILE].sha256
    aside = list(settings.state_dir.glob("catalog.sqlite.corrupt-*"))
    assert len(aside) == 1
    warning = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning
    assert "corrupt" in warning[0].getMessage()
    assert "rebuilding" in warning[0].getMessage()
    assert str(aside[0]) in warning[0].getMessage()


_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from rbee_hive_provisioner import Catalog, CatalogEntry
catalog = Catalog.open(Path(sys.argv[1]), Path(sys.argv[2]))
i = 0
while True:
    catalog.upsert(CatalogEntry(
        reference=f"hf:org/repo:m{i}.gguf", provider="hf", repo="org/repo", revision="main",
        commit="0" * 40, file=f"m{i}.gguf", local_path=Path(f"/x/m{i}.gguf"), size=i,
        sha256=None, downloaded_at=datetime.now(UTC)), [f"hf:org/repo{i}"])
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


def test_catalog_survives_kill_9_in_the_middle_of_writes(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path / "state"), str(tmp_path / "cache")],
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline() == b"ready\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()

    catalog = Catalog.open(tmp_path / "state", tmp_path / "cache")
    try:
        entries = catalog.list()
        assert len(entries) >= 50
        assert catalog.schema_version() == len(MIGRATIONS)
        for entry in entries:  # each row came with its alias: no half-written transaction
            alias = "hf:org/repo" + entry.file.removeprefix("m").removesuffix(".gguf")
            assert catalog.get(alias) == entry
    finally:
        catalog.close()
    assert not list((tmp_path / "state").glob("*.corrupt-*"))


async def test_remove_keeps_a_blob_that_another_snapshot_still_links_to(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    repo = hub.add_repo(REPO, {FILE: make_gguf(30_000)})
    first_commit = repo.commit
    settings = make_settings()
    async with Provisioner.open(settings) as prov:
        a = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}@{first_commit}"))
        repo.commit = OTHER_COMMIT
        b = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}@{OTHER_COMMIT}"))
        assert hub.cdn_gets() == 1  # the second revision reused the blob
        blob = a.path.resolve()
        assert b.path.resolve() == blob

        removed = await prov.remove(ModelRef.parse(f"hf:{REPO}:{FILE}@{first_commit}"))
        assert removed.local_path == a.path
        assert not a.path.exists()
        assert blob.exists()
        assert b.path.read_bytes() == repo.files[FILE].content

        await prov.remove(ModelRef.parse(f"hf:{REPO}:{FILE}@{OTHER_COMMIT}"))
        assert not blob.exists()
        assert await prov.list_models() == []
        with pytest.raises(ModelNotInCatalog) as info:
            await prov.remove(ModelRef.parse(f"hf:{REPO}:{FILE}@{OTHER_COMMIT}"))
    assert info.value.code == "MODEL_NOT_IN_CATALOG"


async def test_remove_by_a_file_less_reference_removes_the_chosen_file(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(30_000), "tiny.Q8_0.gguf": make_gguf(3, 1)})
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}"))
        removed = await prov.remove(ModelRef.parse(f"hf:{REPO}"))
        assert await prov.lookup(ModelRef.parse(f"hf:{REPO}")) is None
    assert removed.file == FILE
    assert not model.path.exists()


async def test_verify_rehashes_the_file_against_the_recorded_sha256(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(30_000)})
    ref = ModelRef.parse(f"hf:{REPO}:{FILE}")
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ref)
        good = await prov.verify(ref)
        model.path.resolve().write_bytes(b"tampered")
        bad = await prov.verify(ref)
        model.path.resolve().unlink()
        gone = await prov.verify(ref)
    assert good.ok
    assert good.actual_sha256 == good.expected_sha256 == model.sha256
    assert not bad.ok
    assert bad.problem is not None
    assert "download it again" in bad.problem
    assert not gone.ok
    assert gone.actual_sha256 is None


async def test_a_catalogued_file_that_vanished_is_forgotten_on_lookup(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(30_000)})
    ref = ModelRef.parse(f"hf:{REPO}:{FILE}")
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ref)
        assert prov.stats().catalog_models == 1
        assert prov.stats().catalog_bytes == 30_000
        model.path.unlink()
        assert await prov.lookup(ref) is None
        assert prov.stats().catalog_models == 0
        again = await prov.ensure(ref)  # and a new request fetches it (the blob is still there)
    assert again.path.read_bytes() == hub.repos[REPO].files[FILE].content
    assert hub.cdn_gets() == 1
