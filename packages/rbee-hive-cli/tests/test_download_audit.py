"""Every download's end reaches the audit trail, failures with their code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rbee_hive_cli._wiring import AuditAdapter
from rbee_hive_http_middleware import AuditLog, verify_audit_dir
from rbee_hive_provisioner import (
    DownloadComplete,
    DownloadError,
    DownloadProgress,
    DownloadStatus,
    ModelRef,
)


def _status(state: DownloadComplete | DownloadError | DownloadProgress) -> DownloadStatus:
    now = datetime.now(UTC)
    return DownloadStatus("d-1", ModelRef.parse("hf:org/repo"), state, now, now)


def test_failed_complete_and_cancelled_downloads_are_audited(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit") as log:
        adapter = AuditAdapter(log)
        adapter.download_ended(_status(DownloadError("HUB_OFFLINE", "offline (HF_HUB_OFFLINE)")))
        adapter.download_ended(_status(DownloadComplete(Path("/m/x.gguf"))))
        adapter.download_ended(_status(DownloadError("DOWNLOAD_CANCELLED", "stopping")))
        adapter.download_ended(_status(DownloadProgress(1, 2, 0.0, None)))  # not an end
    assert verify_audit_dir(tmp_path / "audit").intact
    (day,) = (tmp_path / "audit").glob("*.jsonl")
    records = [json.loads(line) for line in day.read_text().splitlines()]
    ends = [r for r in records if r["event"] == "model_download_end"]
    assert [r["outcome"] for r in ends] == ["failed", "complete", "cancelled"]
    assert ends[0]["details"]["code"] == "HUB_OFFLINE"
    assert ends[0]["details"]["model_ref"] == "hf:org/repo"
    assert ends[1]["details"]["local_path"] == "/m/x.gguf"
