"""The JSON-ready shape of progress events, for the HTTP layer's SSE frames.

The keys follow the original hive's event JSON (tag ``stage`` first) with ``eta_seconds``
added: ``downloading``: stage, bytes_downloaded, bytes_total, speed_mbps, eta_seconds;
``complete``: stage, local_path; ``error``: stage, code, message.
"""

from __future__ import annotations

from typing import Any

from rbee_hive_provisioner._events import (
    DownloadComplete,
    DownloadEvent,
    DownloadProgress,
)


def to_wire(event: DownloadEvent) -> dict[str, Any]:
    """One event as a dict of JSON types with exactly the keys of its stage."""
    if isinstance(event, DownloadProgress):
        return {
            "stage": event.stage,
            "bytes_downloaded": event.bytes_downloaded,
            "bytes_total": event.bytes_total,
            "speed_mbps": round(event.speed_mbps, 3),
            "eta_seconds": None if event.eta_seconds is None else round(event.eta_seconds, 1),
        }
    if isinstance(event, DownloadComplete):
        return {"stage": event.stage, "local_path": str(event.local_path)}
    return {"stage": event.stage, "code": event.code, "message": event.message}
