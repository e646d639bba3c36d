"""Check an audit directory: every record's hash, and every link of the chain, across days."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from rbee_hive_http_middleware._audit_files import audit_files
from rbee_hive_http_middleware._audit_record import (
    FILE_NAME,
    GENESIS_HASH,
    AuditEvent,
    is_hash,
    record_hash,
)
from rbee_hive_http_middleware.exceptions import AuditDirectoryError


@attrs.frozen
class BrokenLink:
    """The first place where the audit trail is not what the chain says it must be."""

    file: Path
    line: int
    problem: str
    expected: str
    found: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.problem} "
            f"(expected {self.expected}, found {self.found})"
        )


@attrs.frozen
class VerifyReport:
    """The outcome of ``verify_audit_dir``: intact with counts, or the first broken link."""

    directory: Path
    files: int
    records: int
    gaps: int
    lost: int
    broken: BrokenLink | None = None

    @property
    def intact(self) -> bool:
        """True when every record and every link checked out."""
        return self.broken is None

    def __str__(self) -> str:
        if self.broken is not None:
            return f"audit trail BROKEN after {self.records} good record(s): {self.broken}"
        lost = f", {self.gaps} gap(s) announcing {self.lost} lost record(s)" if self.gaps else ""
        return f"audit trail intact: {self.records} record(s) in {self.files} file(s){lost}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


@attrs.define
class _Walk:
    directory: Path
    expect_genesis: bool
    last_hash: str | None = None
    records: int = 0
    gaps: int = 0
    lost: int = 0
    torn_at: tuple[Path, int] | None = None  # first unreadable line of a run awaiting a gap

    def check(self, path: Path, number: int, raw: bytes) -> BrokenLink | None:
        try:
            record: Any = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if self.torn_at is None:
                self.torn_at = (path, number)
            return None
        if self.torn_at is not None:
            details = record.get("details")
            if record.get("event") != AuditEvent.AUDIT_GAP or not (
                isinstance(details, dict) and details.get("torn_record") is True
            ):
                file, line = self.torn_at
                return BrokenLink(
                    file, line, "line is not a JSON audit record", "a JSON object", "other text"
                )
            self.torn_at = None
        stored = record.get("hash")
        try:
            computed = record_hash(record)
        except ValueError:  # NaN or Infinity: never written by the audit log
            computed = "a record without NaN/Infinity"
        if stored != computed:
            return BrokenLink(path, number, "record was altered", computed, _short(stored))
        expected_prev = self.last_hash
        if expected_prev is None and self.expect_genesis:
            expected_prev = GENESIS_HASH
        prev = record.get("prev")
        if not is_hash(prev) or (expected_prev is not None and prev != expected_prev):
            return BrokenLink(
                path,
                number,
                "chain link broken (a record before it was removed, added or changed)",
                expected_prev or "a 64-digit hex hash",
                _short(prev),
            )
        day = FILE_NAME.fullmatch(path.name)
        ts = record.get("ts")
        if day is not None and not (isinstance(ts, str) and ts.startswith(day.group(1))):
            return BrokenLink(
                path, number, "record is in the file of another day", day.group(1), _short(ts)
            )
        self.last_hash = str(stored)
        self.records += 1
        if record.get("event") == AuditEvent.AUDIT_GAP:
            self.gaps += 1
            details = record.get("details")
            lost = details.get("lost") if isinstance(details, dict) else None
            self.lost += lost if isinstance(lost, int) else 0
        return None


def verify_audit_dir(
    directory: str | os.PathLike[str], *, expect_genesis: bool = True
) -> VerifyReport:
    """Walk every daily file in date order and check each record's hash and ``prev`` link.

    A run of unreadable lines is accepted only when the next record is the ``audit_gap``
    record (``torn_record: true``) that the audit log writes after a cut-short write. Pass
    ``expect_genesis=False`` when older days were deleted on purpose (retention).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise AuditDirectoryError(f"audit directory {str(folder)!r} does not exist")
    files = audit_files(folder)
    walk = _Walk(folder, expect_genesis)

    def report(broken: BrokenLink | None) -> VerifyReport:
        return VerifyReport(folder, len(files), walk.records, walk.gaps, walk.lost, broken)

    try:
        for path in files:
            with path.open("rb") as file:
                for number, line in enumerate(file, start=1):
                    broken = walk.check(path, number, line.rstrip(b"\n"))
                    if broken is not None:
                        return report(broken)
    except OSError as err:
        raise AuditDirectoryError(
            f"cannot read the audit trail in {str(folder)!r}: {err.strerror}"
        ) from err
    if walk.torn_at is not None:
        file_path, line_number = walk.torn_at
        return report(
            BrokenLink(
                file_path,
                line_number,
                "last record was cut short (the hive marks it with an audit_gap on next start)",
                "a JSON object",
                "other text",
            )
        )
    return report(None)
