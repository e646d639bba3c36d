"""Downloads: the hub protocol, the cache layout, resume, retries, verification."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from rbee_hive_provisioner import (
    AmbiguousModel,
    DownloadComplete,
    DownloadError,
    DownloadFailed,
    DownloadProgress,
    GatedModel,
    InsufficientDisk,
    ModelNotFound,
    ModelRef,
    Provisioner,
    ProvisionerSettings,
    UnknownDownload,
)

if TYPE_CHECKING:
    from conftest import HubServer

pytestmark = pytest.mark.anyio

REPO = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
FILE = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
Settings = Callable[..., ProvisionerSettings]
Gguf = Callable[..., bytes]


def repo_folder(settings: ProvisionerSettings) -> Path:
    assert settings.cache_dir is not None
    return settings.cache_dir / "models--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF"


async def test_download_lands_in_the_hf_cache_layout_and_the_catalog(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(300_000)
    repo = hub.add_repo(REPO, {FILE: content, "README.md": b"hi"})
    settings = make_settings()
    sha = hashlib.sha256(content).hexdigest()
    async with Provisioner.open(settings) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}"))
        entries = await prov.list_models()

    folder = repo_folder(settings)
    link = folder / "snapshots" / repo.commit / FILE
    assert model.path == link
    assert model.ref == ModelRef.parse(f"hf:{REPO}:{FILE}")
    assert model.sha256 == sha
    assert model.size == len(content)
    assert os.readlink(link) == f"../../blobs/{sha}"
    assert link.read_bytes() == content
    assert (folder / "refs" / "main").read_text() == repo.commit
    assert sorted(p.name for p in (folder / "blobs").iterdir()) == [sha]
    assert [e.reference for e in entries] == [f"hf:{REPO}:{FILE}"]
    entry = entries[0]
    assert (entry.repo, entry.revision, entry.commit, entry.file) == (
        REPO,
        "main",
        repo.commit,
        FILE,
    )
    assert (entry.size, entry.sha256, entry.local_path) == (len(content), sha, link)


async def test_second_request_is_answered_from_the_catalog_without_the_network(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(10_000)})
    async with Provisioner.open(make_settings()) as prov:
        first = await prov.ensure(ModelRef.parse(f"hf:{REPO}"))
        requests_before = len(hub.requests)
        ticket = await prov.start_download(ModelRef.parse(f"hf:{REPO}"))
        by_file = await prov.lookup(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert ticket.download_id == "cached"
    assert ticket.cached == first
    assert by_file == first
    assert len(hub.requests) == requests_before


async def test_reset_at_40_percent_resumes_with_range_after_the_bytes_stored(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(16_000_000)
    repo = hub.add_repo(REPO, {FILE: content})
    hub_file = repo.files[FILE]
    hub_file.reset_at = 0.4
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        stats = prov.stats()
    assert model.path.read_bytes() == content
    assert hub_file.gets == 2
    assert hub_file.range_headers[0] is None
    resumed_from = int(str(hub_file.range_headers[1]).removeprefix("bytes=").removesuffix("-"))
    # Everything aiohttp handed out before the break was stored and is not asked for again;
    # only what aiohttp still held (at most twice its 4 MiB read buffer) is fetched twice.
    assert 0 < resumed_from <= 6_400_000
    assert hub_file.bytes_served_twice == 6_400_000 - resumed_from
    assert stats.bytes_downloaded == len(content)  # no byte was stored twice
    assert stats.downloads_completed == 1


async def test_a_stall_counts_as_a_failure_and_the_download_resumes(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(500_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.stall_at = 0.5
    async with Provisioner.open(make_settings(stall_timeout=0.3)) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert model.path.read_bytes() == content
    assert hub_file.range_headers == [None, "bytes=250000-"]
    assert hub_file.bytes_served_twice == 0


async def test_a_stall_on_every_attempt_fails_with_download_stalled(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub_file = hub.add_repo(REPO, {FILE: make_gguf(100_000)}).files[FILE]
    hub_file.stall_at = 0.0001
    hub_file.stalls = 100
    async with Provisioner.open(make_settings(stall_timeout=0.2, max_attempts=2)) as prov:
        with pytest.raises(DownloadFailed) as info:
            await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert info.value.code == "DOWNLOAD_STALLED"
    assert "stall_timeout" in str(info.value)


async def test_corrupt_bytes_are_discarded_and_the_retry_is_verified(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(200_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.corrupt = 1
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert model.path.read_bytes() == content
    assert hub_file.range_headers == [None, None]  # a mismatch restarts from byte 0


async def test_always_corrupt_bytes_fail_with_checksum_mismatch_and_leave_nothing(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub_file = hub.add_repo(REPO, {FILE: make_gguf(50_000)}).files[FILE]
    hub_file.corrupt = 100
    settings = make_settings(max_attempts=3)
    async with Provisioner.open(settings) as prov:
        ticket = await prov.start_download(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        with pytest.raises(DownloadFailed) as info:
            await prov.wait(ticket.download_id)
        entries = await prov.list_models()
        stats = prov.stats()
    assert info.value.code == "CHECKSUM_MISMATCH"
    assert hub_file.sha256 in str(info.value)
    assert hub_file.gets == 3
    assert entries == []
    assert stats.downloads_failed == 1
    folder = repo_folder(settings)
    assert not (folder / "snapshots").exists()
    assert [p.stat().st_size for p in (folder / "blobs").iterdir()] == [0]


async def test_a_content_length_that_promises_more_is_survived(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(120_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.lying_length = 1
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert model.path.read_bytes() == content
    assert hub_file.bytes_served_twice == 0


async def test_more_bytes_than_announced_fail_the_download(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub_file = hub.add_repo(REPO, {FILE: make_gguf(80_000)}).files[FILE]
    hub_file.announced_size = 40_000
    async with Provisioner.open(make_settings(max_attempts=2)) as prov:
        with pytest.raises(DownloadFailed) as info:
            await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert info.value.code == "DOWNLOAD_FAILED"
    assert "40000 bytes it announced" in str(info.value)


async def test_a_server_that_ignores_range_restarts_from_zero(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(300_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.reset_at = 0.5
    hub_file.ignore_range = True
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert model.path.read_bytes() == content
    assert hub_file.range_headers == [None, "bytes=150000-"]


async def test_slow_transfer_reports_rising_progress_with_speed_and_eta(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(400_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.bytes_per_second = 1_000_000
    events: list[object] = []
    async with Provisioner.open(make_settings()) as prov:
        ticket = await prov.start_download(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        async for event in prov.subscribe(ticket.download_id):
            events.append(event)
    progress = [e for e in events if isinstance(e, DownloadProgress)]
    assert isinstance(events[-1], DownloadComplete)
    assert progress[0].bytes_downloaded == 0
    assert progress[0].bytes_total == len(content)
    done = [p.bytes_downloaded for p in progress]
    assert done == sorted(done)
    assert len(progress) >= 3
    moving = [p for p in progress[1:] if p.bytes_downloaded < len(content)]
    assert moving
    assert all(p.speed_mbps > 0 for p in moving)
    assert all(p.eta_seconds is not None and p.eta_seconds > 0 for p in moving)


async def test_unknown_repository_and_file_are_not_found_up_front(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(1000)})
    async with Provisioner.open(make_settings()) as prov:
        for text in ("hf:nobody/nothing", f"hf:{REPO}:missing.gguf", f"hf:{REPO}@nobranch"):
            with pytest.raises(ModelNotFound) as info:
                await prov.start_download(ModelRef.parse(text))
            assert info.value.code == "MODEL_NOT_FOUND", text
        # Nothing runs, but each refusal stays visible as a failed download (status, audit).
        ended = prov.downloads()
        assert [str(d.ref) for d in ended] == [
            "hf:nobody/nothing",
            f"hf:{REPO}:missing.gguf",
            f"hf:{REPO}@nobranch",
        ]
        assert all(not d.active and isinstance(d.state, DownloadError) for d in ended)
        assert {d.state.code for d in ended if isinstance(d.state, DownloadError)} == {
            "MODEL_NOT_FOUND"
        }
    assert hub.cdn_gets() == 0


async def test_gated_model_asks_for_hf_token_and_downloads_with_it(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(1000)}, gated=True)
    hub.token = "hf_secret_value_123"
    ref = ModelRef.parse(f"hf:{REPO}:{FILE}")
    async with Provisioner.open(make_settings()) as prov:
        with pytest.raises(GatedModel) as info:
            await prov.start_download(ref)
    assert info.value.code == "GATED_MODEL"
    assert "HF_TOKEN" in str(info.value)

    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    async with Provisioner.open(make_settings()) as prov:
        model = await prov.ensure(ref)
        assert "hf_secret_value_123" not in repr(prov)
    assert model.path.is_file()
    sent = [h.get("Authorization") for _m, path, h in hub.requests if "/resolve/" in path]
    assert sent[-1] == "Bearer hf_secret_value_123"
    to_cdn = [(m, h.get("Authorization")) for m, path, h in hub.requests if "/cdn/" in path]
    assert to_cdn == [("GET", None)]  # the HEAD stayed on the hub; the token stayed there too


async def test_token_never_appears_in_logs_or_reprs(
    hub: HubServer,
    make_settings: Settings,
    make_gguf: Gguf,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    hub_file = hub.add_repo(REPO, {FILE: make_gguf(100_000)}, gated=True).files[FILE]
    hub_file.reset_at = 0.3
    hub.token = "hf_top_secret_456"
    settings = make_settings(token="hf_top_secret_456")
    async with Provisioner.open(settings) as prov:
        await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        shown = repr(prov) + repr(settings)
    assert "hf_top_secret_456" not in shown
    assert "hf_top_secret_456" not in caplog.text
    assert "attempt 1 of" in caplog.text  # the reset was logged, without the token


async def test_ambiguous_repository_is_refused_with_the_choices(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {"a.f16.gguf": make_gguf(10), "a.bf16.gguf": make_gguf(10, 1)})
    async with Provisioner.open(make_settings()) as prov:
        with pytest.raises(AmbiguousModel) as info:
            await prov.start_download(ModelRef.parse(f"hf:{REPO}"))
    assert info.value.code == "AMBIGUOUS_MODEL"
    assert "a.f16.gguf" in str(info.value)


async def test_three_concurrent_requests_share_one_download(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(2_000_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.bytes_per_second = 20_000_000
    results: list[object] = []
    tickets: list[str] = []
    async with Provisioner.open(make_settings()) as prov:

        async def request(text: str) -> None:
            ref = ModelRef.parse(text)
            ticket = await prov.start_download(ref)
            tickets.append(ticket.download_id)
            results.append(await prov.ensure(ref))

        async with anyio.create_task_group() as tg:
            tg.start_soon(request, f"hf:{REPO}")
            tg.start_soon(request, f"hf:{REPO}")
            tg.start_soon(request, f"hf:{REPO}:{FILE}")
        entries = await prov.list_models()
    assert hub_file.gets == 1
    assert len(set(tickets)) == 1
    assert len({r.path for r in results}) == 1  # type: ignore[attr-defined]
    assert len(entries) == 1


async def test_late_subscriber_gets_the_final_state_until_retention_ends(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(5_000)})
    now = [1000.0]
    async with Provisioner.open(
        make_settings(progress_retention=600), clock=lambda: now[0]
    ) as prov:
        ticket = await prov.start_download(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        model = await prov.wait(ticket.download_id)
        now[0] += 599
        replay = [e async for e in prov.subscribe(ticket.download_id)]
        assert replay == [DownloadComplete(model.path)]
        assert [s.download_id for s in prov.downloads()] == [ticket.download_id]
        now[0] += 2
        with pytest.raises(UnknownDownload):
            prov.subscribe(ticket.download_id)
        assert prov.downloads() == []


async def test_late_subscriber_of_a_failed_download_gets_the_error(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub_file = hub.add_repo(REPO, {FILE: make_gguf(5_000)}).files[FILE]
    hub_file.corrupt = 100
    async with Provisioner.open(make_settings(max_attempts=1)) as prov:
        ticket = await prov.start_download(ModelRef.parse(f"hf:{REPO}:{FILE}"))
        with pytest.raises(DownloadFailed):
            await prov.wait(ticket.download_id)
        replay = [e async for e in prov.subscribe(ticket.download_id)]
    assert len(replay) == 1
    assert isinstance(replay[0], DownloadError)
    assert replay[0].code == "CHECKSUM_MISMATCH"


async def test_insufficient_disk_refuses_before_the_first_byte(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(50_000)})
    async with Provisioner.open(make_settings(disk_reserve_bytes=2**62)) as prov:
        with pytest.raises(InsufficientDisk) as info:
            await prov.start_download(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert info.value.code == "INSUFFICIENT_DISK"
    assert info.value.needed == 50_000
    assert "disk_reserve_bytes" in str(info.value)
    assert hub.cdn_gets() == 0


async def test_disk_admission_seam_gets_the_cache_folder_and_remaining_bytes(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    hub.add_repo(REPO, {FILE: make_gguf(70_000)})
    calls: list[tuple[Path, int]] = []
    settings = make_settings()
    async with Provisioner.open(
        settings, lambda folder, needed: calls.append((folder, needed))
    ) as prov:
        await prov.ensure(ModelRef.parse(f"hf:{REPO}:{FILE}"))
    assert calls == [(settings.cache_dir, 70_000)]


async def test_closing_cancels_a_download_and_the_next_one_resumes_it(
    hub: HubServer, make_settings: Settings, make_gguf: Gguf
) -> None:
    content = make_gguf(1_000_000)
    hub_file = hub.add_repo(REPO, {FILE: content}).files[FILE]
    hub_file.stall_at = 0.3
    ref = ModelRef.parse(f"hf:{REPO}:{FILE}")
    settings = make_settings(stall_timeout=30)
    async with Provisioner.open(settings) as prov:
        ticket = await prov.start_download(ref)
        async for event in prov.subscribe(ticket.download_id):
            if isinstance(event, DownloadProgress) and event.bytes_downloaded >= 300_000:
                break
        subscription = prov.subscribe(ticket.download_id)
    final = [e async for e in subscription][-1]
    assert isinstance(final, DownloadError)
    assert final.code == "DOWNLOAD_CANCELLED"
    partial = repo_folder(settings) / "blobs" / f"{hub_file.sha256}.incomplete"
    assert partial.stat().st_size == 300_000
    assert not (repo_folder(settings) / "snapshots").exists()

    async with Provisioner.open(settings) as prov:
        model = await prov.ensure(ref)
        assert prov.stats().bytes_downloaded == 700_000
    assert model.path.read_bytes() == content
    assert hub_file.range_headers[-1] == "bytes=300000-"
    assert hub_file.bytes_served_twice == 0
    assert not partial.exists()


async def test_file_reference_is_found_when_the_file_exists(
    hub: HubServer, make_settings: Settings, tmp_path: Path
) -> None:
    model_file = tmp_path / "local.gguf"
    model_file.write_bytes(b"GGUF....")
    async with Provisioner.open(make_settings()) as prov:
        found = await prov.ensure(ModelRef.parse(f"file:{model_file}"))
        with pytest.raises(ModelNotFound, match="does not exist"):
            await prov.ensure(ModelRef.parse(f"file:{tmp_path}/absent.gguf"))
    assert (found.path, found.size, found.sha256) == (model_file, 8, None)


async def test_an_error_in_the_block_comes_out_as_itself(make_settings: Settings) -> None:
    with pytest.raises(KeyError):
        async with Provisioner.open(make_settings()):
            raise KeyError("mine")
