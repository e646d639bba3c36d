"""The provisioner: the one object the HTTP server and the CLI use for models."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import anyio
import attrs
from anyio.abc import TaskGroup

from rbee_hive_provisioner._cache import CachedFile, RepoCache, remove_snapshot_file
from rbee_hive_provisioner._catalog import Catalog, CatalogEntry
from rbee_hive_provisioner._choice import choose_gguf
from rbee_hive_provisioner._disk import DiskAdmission, FreeSpaceAdmission
from rbee_hive_provisioner._events import DownloadComplete, DownloadError, DownloadProgress
from rbee_hive_provisioner._hub import HubClient, RemoteFile
from rbee_hive_provisioner._meter import SpeedMeter
from rbee_hive_provisioner._ref import ModelRef
from rbee_hive_provisioner._results import (
    CACHED_DOWNLOAD_ID,
    DownloadTicket,
    LocalModel,
    ProvisionerStats,
    VerifyResult,
)
from rbee_hive_provisioner._settings import ProvisionerSettings
from rbee_hive_provisioner._tracker import DownloadStatus, DownloadTracker, ProgressSubscription
from rbee_hive_provisioner._transfer import RetryPolicy, fetch_blob
from rbee_hive_provisioner.exceptions import (
    DownloadCancelled,
    DownloadFailed,
    HubOffline,
    ModelNotFound,
    ModelNotInCatalog,
    ProvisionerError,
)

log = logging.getLogger("rbee_hive_provisioner")

_READ_BUFFER = 4 * 2**20  # aiohttp buffers up to twice this before it pauses reading


@attrs.define
class _Counters:
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    bytes_downloaded: int = 0


@attrs.define
class _Download:
    key: tuple[str, str, str]
    remote: RemoteFile
    aliases: set[str]
    resumed_from: int
    result: LocalModel | None = None


@attrs.define
class Provisioner:
    """Model references in, verified local files out; open it with ``Provisioner.open``.

    Up-front errors (``InvalidModelRef`` at parse time, then ``HubOffline``,
    ``ModelNotFound``, ``GatedModel``, ``AmbiguousModel``, ``InsufficientDisk`` and a hub that
    stays unreachable) are raised by ``start_download`` itself; everything after the first byte
    (resets, stalls, checksum mismatches, cancellation) ends the download in its error state.
    Either way the failure is also kept as a failed download in ``downloads()`` (for a
    while: ``progress_retention``) and handed to ``on_download_end``, so that an operator
    sees it in ``status`` and in the audit trail.
    """

    _settings: ProvisionerSettings
    _hub: HubClient
    _cache_root: Path
    _catalog: Catalog
    _admission: DiskAdmission
    _tracker: DownloadTracker
    _task_group: TaskGroup
    _clock: Callable[[], float]
    _offline: bool = False
    _on_download_end: Callable[[DownloadStatus], None] | None = None
    _downloads: dict[str, _Download] = attrs.Factory(dict)
    _by_key: dict[tuple[str, str, str], str] = attrs.Factory(dict)
    _by_ref: dict[str, str] = attrs.Factory(dict)
    _counters: _Counters = attrs.Factory(_Counters)

    def __repr__(self) -> str:
        return (
            f"<Provisioner cache={self._cache_root} hub={self._hub.endpoint} "
            f"active={self._tracker.active_count()}>"
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: ProvisionerSettings,
        disk_admission: DiskAdmission | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_download_end: Callable[[DownloadStatus], None] | None = None,
    ) -> AsyncIterator[Provisioner]:
        """Open the catalog and the HTTP session; leaving the block cancels running downloads.

        Cancelled downloads keep their ``.incomplete`` file; the next download resumes it.
        ``disk_admission`` defaults to free space minus ``settings.disk_reserve_bytes``.
        ``on_download_end`` is called with the final status of every download that completed,
        failed (up front or later) or was cancelled; the daemon writes it to the audit trail.
        """
        cache_root = settings.resolved_cache_dir()
        endpoint = settings.resolved_endpoint()
        offline = settings.resolved_offline()
        if offline:
            log.info(
                "offline mode (HF_HUB_OFFLINE): models come only from the cache at %s; "
                "anything else is refused at once",
                cache_root,
            )
        catalog = await anyio.to_thread.run_sync(Catalog.open, settings.state_dir, cache_root)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.stall_timeout, sock_read=settings.stall_timeout
        )
        body_error: BaseException | None = None
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=timeout, read_bufsize=_READ_BUFFER, trust_env=True
                ) as session,
                anyio.create_task_group() as task_group,
            ):
                provisioner = cls(
                    settings=settings,
                    hub=HubClient(session, endpoint, settings.resolved_token()),
                    cache_root=cache_root,
                    catalog=catalog,
                    admission=disk_admission or FreeSpaceAdmission(settings.disk_reserve_bytes),
                    tracker=DownloadTracker(settings.progress_retention, clock),
                    task_group=task_group,
                    clock=clock,
                    offline=offline,
                    on_download_end=on_download_end,
                )
                try:
                    yield provisioner
                except BaseException as err:
                    # Re-raised below, outside the task group, so that the caller gets its own
                    # exception back rather than wrapped in an ExceptionGroup.
                    body_error = err
                finally:
                    task_group.cancel_scope.cancel()
            if body_error is not None:
                raise body_error
        finally:
            with anyio.move_on_after(5, shield=True):
                await anyio.to_thread.run_sync(catalog.close)

    # ------------------------------------------------------------------ lookups

    async def lookup(self, ref: ModelRef) -> LocalModel | None:
        """The local file for ``ref`` without any network call, or None.

        A ``file:`` reference is found when the file exists. An ``hf:`` reference is found in
        the catalog, or (when it names a file) in the Hugging Face cache, for example after
        huggingface_hub downloaded it; such a file is added to the catalog.
        """
        if ref.path is not None:
            path = anyio.Path(ref.path)
            if not await path.is_file():
                return None
            size = (await path.stat()).st_size
            return LocalModel(ref=ref, path=Path(ref.path), size=size, sha256=None)
        entry = await anyio.to_thread.run_sync(self._catalog.get, str(ref))
        if entry is not None:
            if entry.local_path.exists():
                return _local(entry)
            log.warning(
                "catalog entry %s points to %s, which is gone; forgetting it",
                entry.reference,
                entry.local_path,
            )
            await anyio.to_thread.run_sync(self._catalog.delete, entry.reference)
        if ref.file is None or ref.repo is None:
            return None
        found = RepoCache(self._cache_root, ref.repo).find(ref.revision, ref.file)
        if found is None:
            return None
        adopted = CatalogEntry.from_cache(found)
        await anyio.to_thread.run_sync(self._catalog.upsert, adopted)
        log.info("found %s in the model cache at %s; added it to the catalog", ref, found.path)
        return _local(adopted)

    # ------------------------------------------------------------------ downloads

    async def start_download(self, ref: ModelRef) -> DownloadTicket:
        """Answer at once from the cache, join a running download, or start one.

        Raises ``ModelNotFound``, ``GatedModel``, ``AmbiguousModel``, ``InsufficientDisk`` or
        ``DownloadFailed`` (hub unreachable after the retries) before any byte is fetched.
        """
        self.downloads()  # forget the results of downloads the tracker no longer retains
        cached = await self.lookup(ref)
        if cached is not None:
            return DownloadTicket(CACHED_DOWNLOAD_ID, cached)
        if ref.provider == "file":
            raise ModelNotFound(f"model file {ref.path} does not exist or is not a file")
        if (running := self._by_ref.get(str(ref))) is not None:
            return DownloadTicket(running)
        try:
            return await self._start_download(ref)
        except ProvisionerError as err:
            self._refused(ref, err)
            raise

    async def _start_download(self, ref: ModelRef) -> DownloadTicket:
        if self._offline:
            found = await self._offline_choice(ref)
            if found is None:
                raise HubOffline(str(ref), str(self._cache_root))
            return DownloadTicket(CACHED_DOWNLOAD_ID, found)
        remote = await self._resolve(ref)
        key = (remote.repo, remote.commit, remote.file)
        aliases = {str(ref)} if ref.file is None else set()
        if (running := self._by_key.get(key)) is not None:
            self._downloads[running].aliases |= aliases
            self._by_ref[str(ref)] = running
            return DownloadTicket(running)
        repo_cache = RepoCache(self._cache_root, remote.repo)
        blob = repo_cache.blob_path(remote.etag)
        if blob.is_file() and (remote.size is None or blob.stat().st_size == remote.size):
            return DownloadTicket(CACHED_DOWNLOAD_ID, await self._install(remote, aliases))
        partial = repo_cache.incomplete_path(remote.etag)
        done = partial.stat().st_size if partial.is_file() else 0
        if remote.size is not None:  # unknown size: nothing to admit; a full disk fails loudly
            self._cache_root.mkdir(parents=True, exist_ok=True)
            self._admission(self._cache_root, max(remote.size - done, 0))
        download_id = str(uuid.uuid4())
        self._tracker.start(download_id, remote.ref, DownloadProgress(done, remote.size, 0.0, None))
        self._downloads[download_id] = _Download(key, remote, aliases, done)
        self._by_key[key] = download_id
        self._by_ref[str(ref)] = download_id
        self._task_group.start_soon(self._run, download_id, name=f"download {remote.ref}")
        log.info("download %s of %s started (%s bytes)", download_id, remote.ref, remote.size)
        return DownloadTicket(download_id)

    async def _offline_choice(self, ref: ModelRef) -> LocalModel | None:
        """Offline, a file-less reference means the file the usual rule picks among the .gguf
        files of the cached snapshot its revision points to (``lookup`` already tried the
        rest). ``AmbiguousModel`` propagates, as it would online."""
        if ref.repo is None or ref.file is not None:
            return None
        repo_cache = RepoCache(self._cache_root, ref.repo)

        def find() -> CachedFile | None:
            commit = repo_cache.read_ref(ref.revision)
            if commit is None:
                return None
            snapshot = repo_cache.folder / "snapshots" / commit
            if not snapshot.is_dir():
                return None
            names = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*")]
            try:
                file = choose_gguf(
                    str(ref.repo), ref.revision, names, self._settings.quantization_preference
                )
            except ModelNotFound:
                return None
            return repo_cache.find(ref.revision, file)

        found = await anyio.to_thread.run_sync(find)
        if found is None:
            return None
        adopted = CatalogEntry.from_cache(found)
        await anyio.to_thread.run_sync(self._catalog.upsert, adopted, {str(ref)})
        log.info("offline: %s is %s from the model cache", ref, found.path)
        return _local(adopted)

    def _refused(self, ref: ModelRef, err: ProvisionerError) -> None:
        """Keep a download refused before its first byte as a failed download, so that it
        shows in ``downloads()`` and reaches ``on_download_end`` like any other failure."""
        download_id = str(uuid.uuid4())
        self._tracker.start(download_id, ref, DownloadProgress(0, None, 0.0, None))
        self._fail(download_id, err.code, str(err))

    def subscribe(self, download_id: str) -> ProgressSubscription:
        """Progress of a download: the current state first, then updates, ending after the
        final one. Raises ``UnknownDownload``."""
        return self._tracker.subscribe(download_id)

    async def wait(self, download_id: str) -> LocalModel:
        """Wait for a download; raises ``DownloadFailed`` (with the error's code) or
        ``UnknownDownload``."""
        download = self._downloads.get(download_id)  # held: the record may be pruned meanwhile
        final = await self._tracker.wait(download_id)
        if isinstance(final, DownloadError):
            raise DownloadFailed(final.message, final.code)
        assert download is not None
        assert download.result is not None
        return download.result

    async def ensure(self, ref: ModelRef) -> LocalModel:
        """The local model for ``ref``, downloading it first if needed."""
        ticket = await self.start_download(ref)
        if ticket.cached is not None:
            return ticket.cached
        return await self.wait(ticket.download_id)

    def downloads(self) -> list[DownloadStatus]:
        """Active downloads and the retained final states of ended ones."""
        statuses = self._tracker.statuses()
        known = {s.download_id for s in statuses}
        for download_id in [i for i in self._downloads if i not in known]:
            del self._downloads[download_id]
        return statuses

    async def _resolve(self, ref: ModelRef) -> RemoteFile:
        policy = self._policy()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._hub.resolve(ref, self._settings.quantization_preference)
            except DownloadFailed as err:
                if attempt >= policy.max_attempts:
                    raise
                log.warning("resolving %s failed (%s); retrying", ref, err)
                await anyio.sleep(policy.delay(attempt))

    def _policy(self) -> RetryPolicy:
        s = self._settings
        return RetryPolicy(s.max_attempts, s.backoff_base, s.backoff_cap, s.stall_timeout)

    async def _run(self, download_id: str) -> None:
        download = self._downloads[download_id]
        remote = download.remote
        meter = SpeedMeter(remote.size, self._clock, download.resumed_from)

        def on_progress(done: int, fresh: int) -> None:
            self._counters.bytes_downloaded += fresh
            self._tracker.publish(download_id, meter.sample(done))

        repo_cache = RepoCache(self._cache_root, remote.repo)
        try:
            await fetch_blob(self._hub, remote, repo_cache, self._policy(), on_progress)
            download.result = await self._install(remote, download.aliases)
            self._counters.completed += 1
            self._tracker.publish(download_id, DownloadComplete(download.result.path))
            self._ended(download_id)
            log.info(
                "download %s of %s complete: %s", download_id, remote.ref, download.result.path
            )
        except ProvisionerError as err:
            self._fail(download_id, err.code, str(err))
        except anyio.get_cancelled_exc_class():
            self._counters.cancelled += 1
            self._tracker.publish(
                download_id,
                DownloadError(
                    DownloadCancelled.code,
                    f"the download of {remote.ref} was cancelled (the hive is stopping); the "
                    "partial file is kept and the next download of it resumes",
                ),
            )
            self._ended(download_id)
            raise
        except Exception as err:
            # A bug, or a failure nobody translated: it ends this download, not the hive.
            log.exception("download %s of %s failed unexpectedly", download_id, remote.ref)
            self._fail(download_id, DownloadFailed.code, f"unexpected error: {err!r}")
        finally:
            self._by_key.pop(download.key, None)
            for ref_text in [r for r, i in self._by_ref.items() if i == download_id]:
                del self._by_ref[ref_text]

    def _fail(self, download_id: str, code: str, message: str) -> None:
        self._counters.failed += 1
        log.warning("download %s failed: %s: %s", download_id, code, message)
        self._tracker.publish(download_id, DownloadError(code, message))
        self._ended(download_id)

    def _ended(self, download_id: str) -> None:
        if self._on_download_end is None:
            return
        status = next((s for s in self._tracker.statuses() if s.download_id == download_id), None)
        if status is None:
            return
        try:
            self._on_download_end(status)
        except Exception:
            # The observer (the audit trail) is told about the download; its failure must not
            # turn a finished download into a failed one.
            log.exception("on_download_end failed for download %s", download_id)

    async def _install(self, remote: RemoteFile, aliases: set[str]) -> LocalModel:
        """Link the verified blob into ``snapshots/``, write ``refs/`` and the catalog row."""
        repo_cache = RepoCache(self._cache_root, remote.repo)

        def install() -> CatalogEntry:
            link = repo_cache.link_snapshot(remote.commit, remote.file, remote.etag)
            repo_cache.write_ref(remote.revision, remote.commit)
            entry = CatalogEntry(
                reference=str(remote.ref),
                provider="hf",
                repo=remote.repo,
                revision=remote.revision,
                commit=remote.commit,
                file=remote.file,
                local_path=link,
                size=link.stat().st_size,
                sha256=remote.sha256,
                downloaded_at=_now(),
            )
            self._catalog.upsert(entry, aliases)
            return entry

        return _local(await anyio.to_thread.run_sync(install))

    # ------------------------------------------------------------------ catalog

    async def list_models(self) -> list[CatalogEntry]:
        """Every catalogued model, newest first."""
        return await anyio.to_thread.run_sync(self._catalog.list)

    async def _entry(self, ref: ModelRef) -> CatalogEntry:
        entry = await anyio.to_thread.run_sync(self._catalog.get, str(ref))
        if entry is None:
            raise ModelNotInCatalog(str(ref))
        return entry

    async def remove(self, ref: ModelRef) -> CatalogEntry:
        """Forget a model and delete its file (its blob only when no snapshot still links to
        it); raises ``ModelNotInCatalog``."""
        entry = await self._entry(ref)

        def remove() -> None:
            self._catalog.delete(entry.reference)
            if not self._catalog.path_in_use(entry.local_path):
                remove_snapshot_file(entry.local_path, entry.file)

        await anyio.to_thread.run_sync(remove)
        log.info("removed %s (%s)", entry.reference, entry.local_path)
        return entry

    async def verify(self, ref: ModelRef) -> VerifyResult:
        """Re-hash a catalogued model's file against its recorded SHA-256."""
        entry = await self._entry(ref)
        try:
            actual = await anyio.to_thread.run_sync(_sha256_of, entry.local_path)
        except OSError as err:
            return VerifyResult(
                entry.reference,
                entry.local_path,
                entry.sha256,
                None,
                ok=False,
                problem=f"cannot read {entry.local_path}: {err.strerror or err!r}",
            )
        if entry.sha256 is not None and actual != entry.sha256:
            return VerifyResult(
                entry.reference,
                entry.local_path,
                entry.sha256,
                actual,
                ok=False,
                problem=f"the file hashes to {actual}, the catalog recorded {entry.sha256}; "
                "remove the model and download it again",
            )
        return VerifyResult(entry.reference, entry.local_path, entry.sha256, actual, ok=True)

    def stats(self) -> ProvisionerStats:
        """Counts for metrics (one quick catalog query; callable from the event loop)."""
        models, model_bytes = self._catalog.totals()
        c = self._counters
        return ProvisionerStats(
            downloads_completed=c.completed,
            downloads_failed=c.failed,
            downloads_cancelled=c.cancelled,
            bytes_downloaded=c.bytes_downloaded,
            active_downloads=self._tracker.active_count(),
            catalog_models=models,
            catalog_bytes=model_bytes,
        )


def _local(entry: CatalogEntry) -> LocalModel:
    return LocalModel(ref=entry.ref, path=entry.local_path, size=entry.size, sha256=entry.sha256)


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * 2**20):
            digest.update(block)
    return digest.hexdigest()
