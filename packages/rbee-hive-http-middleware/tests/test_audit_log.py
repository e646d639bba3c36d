from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rbee_hive_http_middleware import (
    GENESIS_HASH,
    AuditDirectoryError,
    AuditEvent,
    AuditFile,
    AuditLog,
    open_audit_file,
    verify_audit_dir,
)

if TYPE_CHECKING:
    from conftest import FakeClock, WallClock


def _records(directory: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        lines.extend(json.loads(line) for line in path.read_bytes().splitlines())
    return lines


def _fill(log: AuditLog, count: int) -> None:
    events = [event for event in AuditEvent if event is not AuditEvent.AUDIT_GAP]
    for i in range(count):
        log.record(
            events[i % len(events)],
            outcome="success",
            actor="token:9f86d0",
            client="10.0.0.7",
            details={"i": i, "path": "/v1/workers/spawn"},
        )


def test_records_form_a_chain_that_verifies_intact(tmp_path: Path, wall_clock: WallClock) -> None:
    with AuditLog(tmp_path / "audit", clock=wall_clock) as log:
        _fill(log, 25)
    report = verify_audit_dir(tmp_path / "audit")
    assert report.intact, str(report)
    assert (report.records, report.files, report.gaps) == (25, 1, 0)
    assert "intact: 25 record(s)" in str(report)
    records = _records(tmp_path / "audit")
    assert records[0]["prev"] == GENESIS_HASH
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    first = records[0]
    assert set(first) == {"ts", "event", "outcome", "actor", "client", "details", "prev", "hash"}
    assert first["ts"] == "2026-11-27T12:00:00.000000Z"


def test_hash_is_sha256_of_the_documented_canonical_json(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        log.record(AuditEvent.CONFIG_LOADED, actor="rbee-hive", details={"ünï": "cødé", "n": 1.5})
    line = (tmp_path / "audit-2026-11-27.jsonl").read_bytes().rstrip(b"\n")
    record = json.loads(line)
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record["hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert line == json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_edited_byte_in_the_middle_is_reported_with_file_and_line(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 9)
    path = tmp_path / "audit-2026-11-27.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"outcome":"success"', b'"outcome":"suc!ess"')
    path.write_bytes(b"".join(lines))
    report = verify_audit_dir(tmp_path)
    assert not report.intact
    assert report.broken is not None
    assert (report.broken.file, report.broken.line) == (path, 5)
    assert "altered" in report.broken.problem
    assert report.records == 4
    assert f"{path}:5" in str(report)


def test_structural_damage_and_removed_lines_are_reported(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 6)
    path = tmp_path / "audit-2026-11-27.jsonl"
    original = path.read_bytes()
    lines = original.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))  # drop record 3
    report = verify_audit_dir(tmp_path)
    assert report.broken is not None
    assert report.broken.line == 3
    assert "chain link" in report.broken.problem
    assert report.broken.expected == json.loads(lines[1])["hash"]
    damaged = bytearray(original)
    damaged[len(lines[0]) + 1] = ord("X")  # line 2 no longer parses as JSON
    path.write_bytes(bytes(damaged))
    report = verify_audit_dir(tmp_path)
    assert report.broken is not None
    assert (report.broken.line, report.broken.problem) == (2, "line is not a JSON audit record")


def test_chain_continues_across_a_reopen(tmp_path: Path, wall_clock: WallClock) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 3)
        last = log.last_hash
    wall_clock.advance(60)
    with AuditLog(tmp_path, clock=wall_clock) as reopened:
        assert reopened.last_hash == last
        _fill(reopened, 2)
    records = _records(tmp_path)
    assert records[3]["prev"] == last
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records) == (True, 5)


def test_chain_continues_across_a_utc_day_boundary(tmp_path: Path) -> None:
    clock_values = iter(
        [
            datetime(2026, 11, 27, 23, 59, 59, 900000, tzinfo=UTC),
            datetime(2026, 11, 27, 23, 59, 59, 990000, tzinfo=UTC),
            datetime(2026, 11, 28, 0, 0, 0, 10000, tzinfo=UTC),
            datetime(2026, 11, 28, 0, 0, 1, tzinfo=UTC),
        ]
    )
    current = [datetime(2026, 11, 27, 23, 0, tzinfo=UTC)]

    def clock() -> datetime:
        return current[0]

    with AuditLog(tmp_path, clock=clock) as log:
        for moment in clock_values:
            current[0] = moment
            log.record(AuditEvent.WORKER_SPAWN, actor="token:9f86d0", details={"at": str(moment)})
    day1 = tmp_path / "audit-2026-11-27.jsonl"
    day2 = tmp_path / "audit-2026-11-28.jsonl"
    assert len(day1.read_bytes().splitlines()) == 2
    assert len(day2.read_bytes().splitlines()) == 2
    assert (
        json.loads(day2.read_bytes().splitlines()[0])["prev"]
        == json.loads(day1.read_bytes().splitlines()[-1])["hash"]
    )
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.files) == (True, 4, 2)


def test_reopen_on_a_later_day_links_to_the_newest_file(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    wall_clock.advance(3 * 86400)
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.files) == (True, 4, 2)


def test_moved_record_into_another_days_file_is_reported(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    (tmp_path / "audit-2026-11-27.jsonl").rename(tmp_path / "audit-2026-11-26.jsonl")
    report = verify_audit_dir(tmp_path)
    assert report.broken is not None
    assert "another day" in report.broken.problem


def test_directory_is_0700_and_files_are_0600(tmp_path: Path, wall_clock: WallClock) -> None:
    old_umask = os.umask(0)
    try:
        with AuditLog(tmp_path / "state" / "audit", clock=wall_clock) as log:
            _fill(log, 1)
    finally:
        os.umask(old_umask)
    directory = tmp_path / "state" / "audit"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_loose_existing_directory_and_files_are_tightened(
    tmp_path: Path, wall_clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "audit"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    existing = directory / "audit-2026-11-27.jsonl"
    existing.touch()
    existing.chmod(0o644)
    with (
        caplog.at_level(logging.WARNING, logger="rbee_hive.audit"),
        AuditLog(directory, clock=wall_clock) as log,
    ):
        _fill(log, 1)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert "0755" in caplog.text


def test_details_are_data_and_control_characters_stay_escaped(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    nasty = "%s %(x)s {0} \x1b[31mred\n\rinjected\u2028line\ud800"
    with AuditLog(tmp_path, clock=wall_clock) as log:
        log.record(
            AuditEvent.MODEL_DOWNLOAD,
            actor=nasty,
            details={"ref": nasty, "nested": {"list": [nasty, 1, None, float("nan")]}, "t": object},
        )
    raw = (tmp_path / "audit-2026-11-27.jsonl").read_bytes()
    assert raw.count(b"\n") == 1
    assert b"\x1b" not in raw
    assert b"\r" not in raw
    record = json.loads(raw)
    assert record["details"]["ref"].startswith("%s %(x)s {0} \x1b[31mred\n\rinjected\u2028line")
    assert record["details"]["nested"]["list"][3] == "nan"
    assert record["details"]["t"] == "<class 'object'>"
    assert verify_audit_dir(tmp_path).intact


def test_event_names_must_be_snake_case_and_gaps_are_reserved(tmp_path: Path) -> None:
    with AuditLog(tmp_path) as log:
        with pytest.raises(ValueError, match="snake_case"):
            log.record("Auth Success")
        with pytest.raises(ValueError, match="audit_gap"):
            log.record(AuditEvent.AUDIT_GAP)
        assert log.record("custom_event") is True


class FlakyDisk:
    """An opener seam: a disk that can be full, fail part-way through a write, and count fsyncs."""

    def __init__(self) -> None:
        self.full = False
        self.partial_bytes = 0
        self.fsyncs = 0
        self.opens = 0

    def open(self, path: Path) -> AuditFile:
        self.opens += 1
        return _FlakyFile(self, open_audit_file(path))


class _FlakyFile:
    def __init__(self, disk: FlakyDisk, real: AuditFile) -> None:
        self._disk = disk
        self._real = real

    def write(self, data: bytes) -> int:
        if self._disk.full:
            if self._disk.partial_bytes:
                count, self._disk.partial_bytes = self._disk.partial_bytes, 0
                return self._real.write(data[:count])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._real.write(data)

    def fsync(self) -> None:
        self._disk.fsyncs += 1
        self._real.fsync()

    def close(self) -> None:
        self._real.close()


def test_disk_full_degrades_counts_drops_and_writes_a_gap_record_on_recovery(
    tmp_path: Path, wall_clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FlakyDisk()
    log = AuditLog(tmp_path, clock=wall_clock, opener=disk.open, disk_free=lambda _: 4096)
    _fill(log, 3)
    disk.full = True
    with caplog.at_level(logging.WARNING, logger="rbee_hive.audit"):
        results = [
            log.record(AuditEvent.AUTH_FAILURE, outcome="denied", client="192.0.2.1")
            for _ in range(5)
        ]
    assert results == [False] * 5
    assert (log.dropped, log.degraded) == (5, True)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(tmp_path) in errors[0].getMessage()
    assert "4096 bytes" in errors[0].getMessage()
    assert "No space left on device" in errors[0].getMessage()
    disk.full = False
    assert log.record(AuditEvent.SHUTDOWN, actor="rbee-hive") is True
    assert (log.dropped, log.degraded) == (5, False)
    log.close()
    records = _records(tmp_path)
    assert [r["event"] for r in records[-2:]] == ["audit_gap", "shutdown"]
    assert records[-2]["details"]["lost"] == 5
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.gaps, report.lost) == (True, 5, 1, 5)


def test_write_cut_short_by_a_full_disk_is_marked_and_still_verifies(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    disk = FlakyDisk()
    log = AuditLog(tmp_path, clock=wall_clock, opener=disk.open)
    _fill(log, 2)
    disk.full, disk.partial_bytes = True, 40
    assert log.record(AuditEvent.WORKER_STOP, details={"worker_id": "w"}) is False
    assert log.dropped == 1
    assert verify_audit_dir(tmp_path).broken is not None  # the torn tail, until the gap record
    disk.full = False
    assert log.record(AuditEvent.WORKER_STOP, details={"worker_id": "w"}) is True
    log.close()
    lines = (tmp_path / "audit-2026-11-27.jsonl").read_bytes().splitlines()
    assert len(lines[2]) == 40
    gap = json.loads(lines[3])
    assert (gap["event"], gap["details"]["torn_record"], gap["details"]["lost"]) == (
        "audit_gap",
        True,
        1,
    )
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.gaps) == (True, 4, 1)


def test_record_cut_short_by_a_crash_is_marked_when_the_log_reopens(
    tmp_path: Path, wall_clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
        last = log.last_hash
    path = tmp_path / "audit-2026-11-27.jsonl"
    with path.open("ab") as file:
        file.write(b'{"actor":"token:9f86d0","cli')
    with (
        caplog.at_level(logging.ERROR, logger="rbee_hive.audit"),
        AuditLog(tmp_path, clock=wall_clock) as log,
    ):
        assert "cut short" in caplog.text
        _fill(log, 1)
    records = [json.loads(x) for x in path.read_bytes().splitlines() if x.endswith(b"}")]
    gap = next(r for r in records if r["event"] == "audit_gap")
    assert gap["prev"] == last
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.gaps) == (True, 4, 1)


def test_a_record_that_only_lacks_its_newline_is_continued_without_a_gap(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    path = tmp_path / "audit-2026-11-27.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 1)
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.gaps) == (True, 3, 0)


def test_unopenable_file_degrades_instead_of_raising(tmp_path: Path, wall_clock: WallClock) -> None:
    attempts: list[Path] = []

    def failing_opener(path: Path) -> AuditFile:
        attempts.append(path)
        raise OSError(errno.EACCES, "Permission denied")

    log = AuditLog(tmp_path, clock=wall_clock, opener=failing_opener)
    assert log.record(AuditEvent.CONFIG_LOADED) is False
    assert log.record(AuditEvent.CONFIG_LOADED) is False
    assert (log.dropped, log.degraded, len(attempts)) == (2, True, 2)
    log.close()


def test_critical_events_are_fsynced_at_once_and_routine_ones_periodically(
    tmp_path: Path, wall_clock: WallClock, clock: FakeClock
) -> None:
    disk = FlakyDisk()
    log = AuditLog(
        tmp_path,
        clock=wall_clock,
        monotonic=clock,
        opener=disk.open,
        fsync_interval_seconds=5.0,
    )
    log.record(AuditEvent.AUTH_SUCCESS)
    log.record(AuditEvent.WORKER_SPAWN)
    assert disk.fsyncs == 0
    for event in (AuditEvent.AUTH_FAILURE, AuditEvent.SHUTDOWN, AuditEvent.CONFIG_LOADED):
        log.record(event)
    log.record(AuditEvent.WORKER_KILL)
    assert disk.fsyncs == 4
    log.record(AuditEvent.MODEL_DOWNLOAD)
    assert disk.fsyncs == 4
    clock.advance(5)
    log.record(AuditEvent.MODEL_REMOVAL)
    assert disk.fsyncs == 5
    log.record(AuditEvent.WORKER_STOP)
    log.close()
    assert disk.fsyncs == 6


def test_records_after_close_are_dropped_and_counted(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.close()
    log.close()
    assert log.record(AuditEvent.SHUTDOWN) is False
    assert log.dropped == 1


def test_verifier_reports_a_missing_directory_and_an_empty_one(tmp_path: Path) -> None:
    with pytest.raises(AuditDirectoryError, match="does not exist"):
        verify_audit_dir(tmp_path / "nope")
    report = verify_audit_dir(tmp_path)
    assert (report.intact, report.records, report.files) == (True, 0, 0)


def test_verifier_can_start_mid_chain_after_retention(
    tmp_path: Path, wall_clock: WallClock
) -> None:
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    wall_clock.advance(86400)
    with AuditLog(tmp_path, clock=wall_clock) as log:
        _fill(log, 2)
    (tmp_path / "audit-2026-11-27.jsonl").unlink()
    assert not verify_audit_dir(tmp_path).intact
    assert verify_audit_dir(tmp_path, expect_genesis=False).intact


def test_audit_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "audit").write_text("not a directory")
    with pytest.raises(AuditDirectoryError, match="audit"):
        AuditLog(tmp_path / "audit")
