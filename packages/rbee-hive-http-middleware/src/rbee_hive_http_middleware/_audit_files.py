"""The file seam of the audit log: opening 0600 append-only files, and reading the chain's tail."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import attrs

from rbee_hive_http_middleware._audit_record import FILE_NAME, GENESIS_HASH, is_hash
from rbee_hive_http_middleware.exceptions import AuditDirectoryError

_log = logging.getLogger("rbee_hive.audit")
_CHUNK = 64 * 1024


class AuditFile(Protocol):
    """An open audit file; the real one is an ``O_APPEND`` descriptor, tests inject failures."""

    def write(self, data: bytes) -> int:
        """Write some of ``data``; return how many bytes were written, or raise OSError."""
        ...

    def fsync(self) -> None:
        """Make what was written durable."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


AuditFileOpener = Callable[[Path], AuditFile]


class _OsAuditFile:
    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fd = os.open(path, flags, 0o600)
        try:
            os.fchmod(self._fd, 0o600)
        except OSError:
            os.close(self._fd)
            raise

    def write(self, data: bytes) -> int:
        return os.write(self._fd, data)

    def fsync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def open_audit_file(path: Path) -> AuditFile:
    """Open ``path`` for appending, creating it 0600; symlinks are refused."""
    return _OsAuditFile(path)


def free_bytes(directory: Path) -> int | None:
    """Free bytes on the filesystem of ``directory``, or None when that cannot be read."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def secure_directory(directory: Path) -> None:
    """Create ``directory`` 0700 (with parents), or tighten an existing one to 0700."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise AuditDirectoryError(f"audit directory {str(directory)!r} is not a directory")
        mode = stat.S_IMODE(info.st_mode)
        if mode != 0o700:
            directory.chmod(0o700)
            _log.warning(
                "audit directory %r had mode %04o; changed it to 0700 so only the hive's "
                "user can read the audit trail",
                str(directory),
                mode,
            )
    except OSError as err:
        raise AuditDirectoryError(
            f"cannot create or secure the audit directory {str(directory)!r}: {err.strerror}; "
            "check the state folder's owner and permissions, or set another state folder"
        ) from err


def audit_files(directory: Path) -> list[Path]:
    """The daily audit files of ``directory``, oldest first."""
    try:
        names = sorted(
            entry.name for entry in os.scandir(directory) if FILE_NAME.fullmatch(entry.name)
        )
    except OSError as err:
        raise AuditDirectoryError(
            f"cannot list the audit directory {str(directory)!r}: {err.strerror}"
        ) from err
    return [directory / name for name in names]


def _lines_from_end(path: Path) -> Iterator[bytes]:
    """The lines of ``path`` from the last to the first; the first item is the text after the
    last newline (``b""`` when the file ends with one)."""
    with path.open("rb") as file:
        position = file.seek(0, os.SEEK_END)
        pending = b""
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            file.seek(position)
            parts = (file.read(step) + pending).split(b"\n")
            pending = parts[0]
            yield from reversed(parts[1:])
        yield pending


def _record_hash_of(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and is_hash(record.get("hash")):
        return str(record["hash"])
    return None


@attrs.frozen
class ChainTail:
    """Where the hash chain ends on disk when the audit log opens."""

    last_hash: str = GENESIS_HASH
    #: The newest file when it does not end with a newline (its last line must be ended).
    unterminated: Path | None = None
    #: True when that unterminated text is not a complete record (a write was cut short).
    torn: bool = False


def find_chain_tail(directory: Path) -> ChainTail:
    """Read backwards from the newest file to the last complete record."""
    unterminated: Path | None = None
    torn = False
    try:
        for path in reversed(audit_files(directory)):
            for index, line in enumerate(_lines_from_end(path)):
                if index == 0 and line and unterminated is None and not torn:
                    unterminated = path
                if not line.strip():
                    continue
                found = _record_hash_of(line)
                if found is not None:
                    return ChainTail(found, unterminated, torn)
                torn = True
    except OSError as err:
        raise AuditDirectoryError(
            f"cannot read the audit trail in {str(directory)!r} to continue its hash chain: "
            f"{err.strerror}"
        ) from err
    return ChainTail(GENESIS_HASH, unterminated, torn)
