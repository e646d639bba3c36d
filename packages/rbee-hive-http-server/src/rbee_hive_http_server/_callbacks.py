"""The worker callback URLs the hive hands out, each with a secret only that worker has."""

from __future__ import annotations

import attrs

from rbee_hive_http_middleware import CallbackSecrets


@attrs.define
class CallbackUrls:
    """Implements the supervisor's ``WorkerCallbacks``: ``issue`` gives a worker the URL it
    POSTs its ready callback to (its heartbeats go to that URL plus ``/v1/heartbeat``).

    ``base_url`` is how a worker on this machine reaches the hive, e.g. ``http://127.0.0.1:9200``.
    """

    base_url: str
    secrets: CallbackSecrets = attrs.field(factory=CallbackSecrets)

    def issue(self, worker_id: str) -> str:
        """A fresh secret URL for the worker (an older one stops working)."""
        return self.base_url.rstrip("/") + self.secrets.callback_path(self.secrets.issue(worker_id))

    def restore(self, worker_id: str, url: str) -> bool:
        """Accept a URL an earlier hive issued to ``worker_id`` (the worker was adopted after
        a hive restart); False when it is not one of this hive's callback URLs (the hive now
        listens elsewhere) or its secret is not acceptable."""
        prefix = self.base_url.rstrip("/") + self.secrets.callback_path("")
        if not url.startswith(prefix):
            return False
        return self.secrets.restore(worker_id, url[len(prefix) :])

    def revoke(self, worker_id: str) -> None:
        """The worker is gone: its URL stops working."""
        self.secrets.revoke(worker_id)
