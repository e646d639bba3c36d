"""The ``.incomplete`` file of a download: bytes on disk plus the running SHA-256 of them."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

import anyio

_READ_BLOCK = 8 * 2**20


class PartialFile:
    """An append-only file and the hash of everything in it; use from one task at a time.

    The blocking methods (``write``, ``reset``) are meant for a worker thread; ``size`` and
    the hash always describe exactly the bytes that are on disk.
    """

    def __init__(self, path: Path, file: BinaryIO, size: int, digest: hashlib._Hash) -> None:
        self.path = path
        self._file = file
        self._size = size
        self._hash = digest

    def __repr__(self) -> str:
        return f"<PartialFile {self.path.name} size={self._size}>"

    @classmethod
    async def open(cls, path: Path) -> PartialFile:
        """Open (or create) the file and hash what an earlier attempt left in it."""
        return await anyio.to_thread.run_sync(cls._open_sync, path)

    @classmethod
    def _open_sync(cls, path: Path) -> PartialFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with contextlib.suppress(FileNotFoundError), path.open("rb") as existing:
            while block := existing.read(_READ_BLOCK):
                digest.update(block)
                size += len(block)
        # Unbuffered append: each write is one syscall on the caller's buffer, no copy.
        return cls(path, path.open("ab", buffering=0), size, digest)

    @property
    def size(self) -> int:
        """Bytes on disk (and hashed)."""
        return self._size

    def hexdigest(self) -> str:
        """SHA-256 of the bytes so far."""
        return self._hash.hexdigest()

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append and hash ``pieces`` (blocking; hashlib releases the GIL on large data)."""
        for piece in pieces:
            view = memoryview(piece)
            while view:
                view = view[self._file.write(view) :]  # a raw write may be short
            self._hash.update(piece)
            self._size += len(piece)

    def reset(self) -> None:
        """Throw the bytes away: the next write starts the file again."""
        self._file.truncate(0)
        self._hash = hashlib.sha256()
        self._size = 0

    def close(self) -> None:
        """Close the file, keeping it on disk for a later resume."""
        self._file.close()

    def discard(self) -> None:
        """Close and delete the file."""
        self.close()
        self.path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def blob_lock(path: Path, poll: float = 0.1) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (the lock huggingface_hub's filelock takes).

    Guards one blob against a second writer: another task of this process, another hive, or
    huggingface_hub downloading the same file into the same cache.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await anyio.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
