"""The audit trail: hash-chained JSON lines, one 0600 file per UTC day, in a 0700 directory.

Writing: each record is one small synchronous ``write`` on an ``O_APPEND`` descriptor (no
user-space buffer, so it is "flushed" at once and survives a crash of the process). Critical
events are also fsynced before ``record`` returns; the others are fsynced at the first record
after ``fsync_interval_seconds`` and on ``sync``/``close``. A write to the page cache takes
microseconds, so it is done inline on the event loop; the fsyncs (a few milliseconds each)
are bounded by the lockout policy for the auth failures an attacker can cause.

Disk full or any write error: ``record`` never raises. The log turns *degraded*: it logs one
ERROR naming the directory and the free space, drops records and counts them (``dropped``),
and retries on every later record. The first write that succeeds is an ``audit_gap`` record
that says how many records were lost, so ``verify_audit_dir`` still finds an unbroken chain.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from rbee_hive_http_middleware._audit_files import (
    AuditFile,
    AuditFileOpener,
    find_chain_tail,
    free_bytes,
    open_audit_file,
    secure_directory,
)
from rbee_hive_http_middleware._audit_record import (
    CRITICAL_EVENTS,
    AuditEvent,
    canonical_json,
    check_event_name,
    file_name_for,
    format_timestamp,
    record_hash,
    to_json_value,
)

_log = logging.getLogger("rbee_hive.audit")
#: ``actor`` of the records the hive writes about itself.
HIVE_ACTOR = "rbee-hive"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Append-only, hash-chained audit trail; ``record`` is safe to call on the request path."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        opener: AuditFileOpener = open_audit_file,
        disk_free: Callable[[Path], int | None] = free_bytes,
        fsync_interval_seconds: float = 5.0,
    ) -> None:
        self._dir = Path(directory)
        secure_directory(self._dir)
        tail = find_chain_tail(self._dir)
        self._clock = clock
        self._monotonic = monotonic
        self._opener = opener
        self._disk_free = disk_free
        self._fsync_interval = fsync_interval_seconds
        self._lock = threading.Lock()
        self._file: AuditFile | None = None
        self._file_path: Path | None = None
        self._last_hash = tail.last_hash
        self._unterminated = tail.unterminated
        self._last_sync = monotonic()
        self._unsynced = False
        self._sync_failing = False
        self._written = 0
        self._dropped = 0
        self._lost = 1 if tail.torn else 0  # records missing from the chain, not yet announced
        self._torn = tail.torn
        self._degraded_since: str | None = None
        self._closed = False
        if tail.torn:
            _log.error(
                "audit trail in %r ends with a record that was cut short (a crash or a full "
                "disk while writing); an audit_gap record will mark it",
                str(self._dir),
            )
        with self._lock:
            self._announce_gap_if_needed(self._clock())

    def __repr__(self) -> str:
        state = "degraded" if self.degraded else ("closed" if self._closed else "ok")
        return (
            f"AuditLog(directory={str(self._dir)!r}, state={state}, "
            f"written={self._written}, dropped={self._dropped})"
        )

    @property
    def directory(self) -> Path:
        """The audit directory."""
        return self._dir

    @property
    def dropped(self) -> int:
        """Records lost since open because they could not be written (a counter for metrics)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Records written since open (``audit_gap`` records included)."""
        return self._written

    @property
    def degraded(self) -> bool:
        """True while records are being lost and the ``audit_gap`` record is still owed."""
        return self._lost > 0 or self._torn

    @property
    def last_hash(self) -> str:
        """``hash`` of the last record in the chain (``prev`` of the next one)."""
        return self._last_hash

    def record(
        self,
        event: AuditEvent | str,
        *,
        outcome: str = "success",
        actor: str | None = None,
        client: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> bool:
        """Append one record; True when it reached the file, False when it was dropped.

        ``actor`` is who acted (``token:<fp6>``, ``worker:<id>``, ``rbee-hive``), ``client``
        the network address, ``details`` plain data (never a format string). Never raises
        for I/O errors; raises ValueError only for an event name that is not snake_case, or
        for ``audit_gap``, which only the log itself writes.
        """
        name = check_event_name(event)
        if name == AuditEvent.AUDIT_GAP:
            raise ValueError("audit_gap records are written by the audit log itself")
        with self._lock:
            if self._closed:
                self._dropped += 1
                _log.warning("audit record %s dropped: the audit log is already closed", name)
                return False
            now = self._clock()
            if not self._announce_gap_if_needed(now):
                self._drop()
                return False
            fields = {
                "event": name,
                "outcome": to_json_value(outcome),
                "actor": to_json_value(actor),
                "client": to_json_value(client),
                "details": to_json_value(dict(details or {})),
            }
            if self._append(now, fields, critical=name in CRITICAL_EVENTS):
                return True
            self._drop()
            return False

    def sync(self) -> None:
        """fsync what was written since the last sync (called on shutdown and periodically)."""
        with self._lock:
            self._sync()

    def close(self) -> None:
        """Sync and close the file; later records are dropped and counted."""
        with self._lock:
            if self._closed:
                return
            self._sync()
            self._close_file()
            self._closed = True

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def _drop(self) -> None:
        self._dropped += 1
        self._lost += 1

    def _announce_gap_if_needed(self, now: datetime) -> bool:
        """Write the owed ``audit_gap`` record; False while writing still fails."""
        if not self.degraded:
            return True
        if self._unterminated is not None and not self._terminate(self._unterminated):
            return False
        fields = {
            "event": AuditEvent.AUDIT_GAP.value,
            "outcome": "failure",
            "actor": HIVE_ACTOR,
            "client": None,
            "details": {
                "lost": self._lost,
                "torn_record": self._torn,
                "since": self._degraded_since,
                "reason": "records could not be written (see the hive's error log)",
            },
        }
        if not self._append(now, fields, critical=True):
            return False
        if self._degraded_since is not None:
            _log.warning(
                "audit log in %r is writing again; %d record(s) were lost since %s and an "
                "audit_gap record now says so",
                str(self._dir),
                self._lost,
                self._degraded_since,
            )
        self._lost = 0
        self._torn = False
        self._degraded_since = None
        return True

    def _terminate(self, path: Path) -> bool:
        """End the unfinished last line of ``path`` so the next record starts on its own line."""
        try:
            file = self._opener(path)
            try:
                file.write(b"\n")
                file.fsync()
            finally:
                file.close()
        except OSError as err:
            self._degrade(err)
            return False
        self._unterminated = None
        return True

    def _append(self, now: datetime, fields: Mapping[str, object], *, critical: bool) -> bool:
        record: dict[str, object] = {
            "ts": format_timestamp(now),
            **fields,
            "prev": self._last_hash,
        }
        record["hash"] = record_hash(record)
        data = (canonical_json(record) + "\n").encode("utf-8")
        path = self._dir / file_name_for(now.astimezone(UTC).date())
        if self._unterminated == path and not self._terminate(path):
            return False
        written = 0
        try:
            file = self._file_for(path)
            while written < len(data):
                written += file.write(data[written:])
        except OSError as err:
            if written:
                self._unterminated = path
                self._torn = True
            self._close_file()
            self._degrade(err)
            return False
        self._last_hash = str(record["hash"])
        self._written += 1
        self._unsynced = True
        if critical or self._monotonic() - self._last_sync >= self._fsync_interval:
            self._sync()
        return True

    def _file_for(self, path: Path) -> AuditFile:
        if self._file is not None and self._file_path == path:
            return self._file
        if self._file is not None:
            self._sync()  # yesterday's file is complete: make it durable before moving on
            self._close_file()
        self._file = self._opener(path)
        self._file_path = path
        return self._file

    def _sync(self) -> None:
        if self._file is None or not self._unsynced:
            return
        try:
            self._file.fsync()
        except OSError as err:
            # The records are in the file (page cache) and in the chain; only durability
            # against a power cut is in doubt, so nothing is counted as lost.
            if not self._sync_failing:
                _log.error(
                    "audit log: fsync of %r failed (%s); records may be lost if the machine "
                    "loses power; check the disk",
                    str(self._file_path),
                    err.strerror or type(err).__name__,
                )
            self._sync_failing = True
            self._close_file()
            return
        self._sync_failing = False
        self._unsynced = False
        self._last_sync = self._monotonic()

    def _close_file(self) -> None:
        file, self._file, self._file_path = self._file, None, None
        if file is not None:
            try:
                file.close()
            except OSError as err:
                _log.error("closing audit file in %r failed: %s", str(self._dir), err.strerror)

    def _degrade(self, err: OSError) -> None:
        if self._degraded_since is not None:
            return
        self._degraded_since = format_timestamp(self._clock())
        free = self._disk_free(self._dir)
        _log.error(
            "audit log DEGRADED: cannot write to %r (%s; %s free on that filesystem); audit "
            "records are being dropped and counted, and an audit_gap record will be written "
            "when writing works again; free disk space or fix the directory",
            str(self._dir),
            err.strerror or type(err).__name__,
            "unknown space" if free is None else f"{free} bytes",
        )
