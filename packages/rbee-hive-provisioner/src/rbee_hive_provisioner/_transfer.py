"""Fetching one blob: stream, hash while streaming, resume, retry, verify, rename.

The network side receives in the event loop; a writer task appends and hashes batches (up to
a few MiB) in a worker thread, so receiving and hashing overlap and the loop stays free.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from rbee_hive_provisioner._cache import RepoCache
from rbee_hive_provisioner._hub import HubClient, RemoteFile, hub_error
from rbee_hive_provisioner._partial import PartialFile, blob_lock
from rbee_hive_provisioner.exceptions import (
    ChecksumMismatch,
    DownloadFailed,
    DownloadStalled,
)

log = logging.getLogger("rbee_hive_provisioner")

_BATCH_BYTES = 4 * 2**20
_QUEUED_BATCHES = 2
_FLUSH_AFTER = 0.1

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes in the partial file, bytes freshly received) after each written batch."""


@attrs.frozen
class RetryPolicy:
    """How often and how patiently one blob is fetched."""

    max_attempts: int
    backoff_base: float
    backoff_cap: float
    stall_timeout: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): capped doubling."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


async def fetch_blob(
    hub: HubClient,
    remote: RemoteFile,
    cache: RepoCache,
    policy: RetryPolicy,
    on_progress: ProgressCallback,
) -> Path:
    """Bring the blob of ``remote`` into the cache, verified; return its path.

    Raises the last attempt's error (``DownloadFailed`` and its subclasses) once
    ``policy.max_attempts`` attempts failed; ``ModelNotFound``/``GatedModel`` at once.
    Cancellation leaves the ``.incomplete`` file for the next call to resume.
    """
    blob = cache.blob_path(remote.etag)
    async with blob_lock(cache.lock_path(remote.etag)):
        if _complete(blob, remote.size):
            return blob  # another writer finished it while we waited for the lock
        partial = await PartialFile.open(cache.incomplete_path(remote.etag))
        if partial.size:
            log.info("resuming %s from byte %d", remote.ref, partial.size)
            on_progress(partial.size, 0)
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    await _attempt(hub, remote, partial, policy.stall_timeout, on_progress)
                    _verify(remote, partial)
                    break
                except DownloadFailed as err:
                    if attempt >= policy.max_attempts:
                        raise type(err)(
                            f"{err} (gave up after {attempt} attempts; setting max_attempts)",
                            err.code,
                        ) from err
                    delay = policy.delay(attempt)
                    log.warning(
                        "download of %s, attempt %d of %d failed: %s; resuming from byte %d "
                        "in %.1f s",
                        remote.ref,
                        attempt,
                        policy.max_attempts,
                        err,
                        partial.size,
                        delay,
                    )
                    await anyio.sleep(delay)
        finally:
            partial.close()
        os.replace(partial.path, blob)
    return blob


def _complete(blob: Path, size: int | None) -> bool:
    try:
        actual = blob.stat().st_size
    except OSError:
        return False
    return size is None or actual == size


def _verify(remote: RemoteFile, partial: PartialFile) -> None:
    if remote.size is not None and partial.size != remote.size:
        raise DownloadFailed(
            f"the hub sent {partial.size} bytes of {remote.ref} but announced {remote.size}"
        )
    expected = remote.sha256
    if expected is None:
        log.info(
            "%s is not an LFS file (ETag %s); its SHA-256 cannot be checked",
            remote.ref,
            remote.etag,
        )
        return
    actual = partial.hexdigest()
    if actual != expected:
        partial.reset()
        raise ChecksumMismatch(
            f"{remote.ref} hashed to {actual} but the hub announced SHA-256 {expected}; the "
            "bytes were corrupted on the way and were discarded"
        )


async def _attempt(
    hub: HubClient,
    remote: RemoteFile,
    partial: PartialFile,
    stall_timeout: float,
    on_progress: ProgressCallback,
) -> None:
    if remote.size is not None and partial.size >= remote.size:
        if partial.size > remote.size:
            await anyio.to_thread.run_sync(partial.reset)
        else:
            return  # complete already; only the verification is left
    offset = partial.size
    failure: DownloadFailed | None = None
    try:
        async with hub.get(remote.url, offset, stall_timeout) as resp:
            await _check_response(resp, remote, partial, offset)
            failure = await _stream(resp, remote, partial, on_progress)
    except TimeoutError as err:
        failure = DownloadStalled(
            f"no byte of {remote.ref} arrived for {stall_timeout:g} s (setting stall_timeout)"
        )
        failure.__cause__ = err
    except (aiohttp.ClientError, OSError) as err:
        failure = DownloadFailed(f"the connection for {remote.ref} failed: {err!r}")
        failure.__cause__ = err
    if failure is not None:
        raise failure


async def _check_response(
    resp: aiohttp.ClientResponse, remote: RemoteFile, partial: PartialFile, offset: int
) -> None:
    what = f"{remote.ref}"
    if resp.status == 416:
        await anyio.to_thread.run_sync(partial.reset)
        raise DownloadFailed(f"the hub cannot serve {what} from byte {offset}; restarting")
    if resp.status >= 400:
        raise hub_error(resp.status, resp.headers, what)
    if resp.status == 200 and offset:
        log.info("the server ignored Range for %s; restarting from byte 0", what)
        await anyio.to_thread.run_sync(partial.reset)
    elif resp.status == 206:
        content_range = resp.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {offset}-"):
            await anyio.to_thread.run_sync(partial.reset)
            raise DownloadFailed(
                f"asked for {what} from byte {offset} but got Content-Range "
                f"{content_range[:60]!r}; restarting"
            )
    elif resp.status != 200:
        raise DownloadFailed(f"unexpected HTTP {resp.status} for {what}")


async def _stream(
    resp: aiohttp.ClientResponse,
    remote: RemoteFile,
    partial: PartialFile,
    on_progress: ProgressCallback,
) -> DownloadFailed | None:
    """Receive into batches while the writer task stores them; the error, if any."""
    network_error: BaseException | None = None
    writer_error: list[DownloadFailed] = []
    send, receive = anyio.create_memory_object_stream[list[bytes]](_QUEUED_BATCHES)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_write_batches, receive, remote, partial, on_progress, writer_error)
        with send:
            batch: list[bytes] = []
            batch_bytes = 0
            try:
                while True:
                    # Bytes held back while the writer was busy go out after a short pause in
                    # the stream, so progress shows them even when the next chunk is late.
                    with anyio.move_on_after(_FLUSH_AFTER if batch else math.inf) as wait:
                        # readchunk hands out aiohttp's buffered chunks as they are; readany
                        # would first join them into one copy.
                        data, _ = await resp.content.readchunk()
                    if wait.cancelled_caught:
                        flush = True
                    elif not data:
                        break
                    else:
                        batch.append(data)
                        batch_bytes += len(data)
                        # An idle writer takes what there is (a slow download reports each
                        # chunk); a busy one lets batches grow, so few thread hand-offs.
                        idle = send.statistics().tasks_waiting_receive > 0
                        flush = idle or batch_bytes >= _BATCH_BYTES
                    if flush:
                        await send.send(batch)
                        batch, batch_bytes = [], 0
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                # What aiohttp handed out is stored before the error counts, so the resume
                # starts right after it. What aiohttp still held is not readable through its
                # public API (its read methods raise first); those bytes are fetched again.
                network_error = err
            except anyio.BrokenResourceError:
                pass  # the writer failed and said why in writer_error
            if batch and not writer_error:
                with contextlib.suppress(anyio.BrokenResourceError):
                    await send.send(batch)
    if writer_error:
        return writer_error[0]
    if network_error is not None:
        raise network_error
    return None


async def _write_batches(
    receive: MemoryObjectReceiveStream[list[bytes]],
    remote: RemoteFile,
    partial: PartialFile,
    on_progress: ProgressCallback,
    errors: list[DownloadFailed],
) -> None:
    with receive:
        async for batch in receive:
            fresh = sum(len(piece) for piece in batch)
            if remote.size is not None and partial.size + fresh > remote.size:
                await anyio.to_thread.run_sync(partial.reset)
                errors.append(
                    DownloadFailed(
                        f"the hub sent more than the {remote.size} bytes it announced for "
                        f"{remote.ref}; discarded them"
                    )
                )
                return
            try:
                await anyio.to_thread.run_sync(partial.write, batch)
            except OSError as err:
                failure = DownloadFailed(
                    f"could not write {partial.path}: {err.strerror or err!r}; check the "
                    "disk and the permissions of the cache folder (HF_HUB_CACHE)"
                )
                failure.__cause__ = err
                errors.append(failure)
                return
            on_progress(partial.size, fresh)
