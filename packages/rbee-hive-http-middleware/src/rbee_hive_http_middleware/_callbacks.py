"""Per-worker callback credentials carried in the callback URL the hive hands each worker.

The unmodified llm-worker-rbee sends no ``Authorization`` header: it POSTs its ready callback
to exactly the ``--callback-url`` it was given and its heartbeats to ``<that URL>/v1/heartbeat``.
So the hive puts a fresh random secret into that URL, one per worker:

    /v1/workers/ready/<secret>                  ready callback
    /v1/workers/ready/<secret>/v1/heartbeat     heartbeats

Only the worker (and the hive) know the secret, so nobody else can mark that worker ready.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Protocol

#: Where callback URLs live; ``/v1/workers/ready`` itself stays a normal protected route.
DEFAULT_CALLBACK_PREFIX = "/v1/workers/ready/"
#: What the worker appends to its callback URL for heartbeats.
HEARTBEAT_SUFFIX = "/v1/heartbeat"
_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")


class CallbackAuthenticator(Protocol):
    """Recognises worker-callback paths and says which worker a path's secret belongs to."""

    def is_callback_path(self, path: str) -> bool:
        """True when ``path`` is a callback path, whatever its secret (so no bearer applies)."""
        ...

    def worker_for_path(self, path: str) -> str | None:
        """The worker id whose secret is in ``path``, or None (compare in constant time)."""
        ...

    def redact_path(self, path: str) -> str:
        """``path`` with its secret replaced, fit for logs and audit records."""
        ...


class CallbackSecrets:
    """In-memory store of per-worker callback secrets; implements ``CallbackAuthenticator``.

    Secrets are stored only as SHA-256 digests, and looked up by digest, so the lookup time
    does not depend on how much of a guessed secret is right.
    """

    def __init__(self, prefix: str = DEFAULT_CALLBACK_PREFIX) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"callback prefix {prefix!r} must start and end with '/'")
        self._prefix = prefix
        self._worker_by_digest: dict[bytes, str] = {}
        self._digest_by_worker: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"CallbackSecrets(prefix={self._prefix!r}, workers={len(self._digest_by_worker)})"

    def __len__(self) -> int:
        return len(self._digest_by_worker)

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode("ascii")).digest()

    def issue(self, worker_id: str) -> str:
        """A new secret for ``worker_id``; any earlier secret of that worker stops working."""
        self.revoke(worker_id)
        secret = secrets.token_urlsafe(32)
        digest = self._digest(secret)
        self._worker_by_digest[digest] = worker_id
        self._digest_by_worker[worker_id] = digest
        return secret

    def restore(self, worker_id: str, secret: str) -> bool:
        """Accept ``secret`` for ``worker_id`` again: a worker adopted after a hive restart
        still reports to the URL the previous hive gave it. False (and nothing changes) when
        ``secret`` is not well-formed or is another worker's."""
        if _SECRET.fullmatch(secret) is None:
            return False
        digest = self._digest(secret)
        owner = self._worker_by_digest.get(digest)
        if owner is not None and owner != worker_id:
            return False
        self.revoke(worker_id)
        self._worker_by_digest[digest] = worker_id
        self._digest_by_worker[worker_id] = digest
        return True

    def revoke(self, worker_id: str) -> None:
        """Forget ``worker_id``'s secret (on stop, crash, removal); unknown ids are ignored."""
        digest = self._digest_by_worker.pop(worker_id, None)
        if digest is not None:
            self._worker_by_digest.pop(digest, None)

    def worker_for(self, secret: str) -> str | None:
        """The worker id that ``secret`` was issued to, or None."""
        if _SECRET.fullmatch(secret) is None:
            return None
        return self._worker_by_digest.get(self._digest(secret))

    def callback_path(self, secret: str) -> str:
        """The ready-callback path for ``secret`` (append it to the hive's base URL)."""
        return f"{self._prefix}{secret}"

    def heartbeat_path(self, secret: str) -> str:
        """The path the worker will post heartbeats to for ``secret``."""
        return f"{self._prefix}{secret}{HEARTBEAT_SUFFIX}"

    def secret_in_path(self, path: str) -> str | None:
        """The secret of a callback or heartbeat path, or None for any other path."""
        if not path.startswith(self._prefix):
            return None
        rest = path[len(self._prefix) :]
        secret, _, tail = rest.partition("/")
        if tail and f"/{tail}" != HEARTBEAT_SUFFIX:
            return None
        return secret or None

    def is_callback_path(self, path: str) -> bool:
        """True for every path under the callback prefix (the secret decides the outcome)."""
        return path.startswith(self._prefix)

    def worker_for_path(self, path: str) -> str | None:
        """The worker id that a callback or heartbeat path's secret belongs to, or None."""
        secret = self.secret_in_path(path)
        return None if secret is None else self.worker_for(secret)

    def redact_path(self, path: str) -> str:
        """The path with the secret replaced by ``<secret>`` (for logs and audit records)."""
        if not path.startswith(self._prefix):
            return path
        _secret, slash, tail = path[len(self._prefix) :].partition("/")
        return f"{self._prefix}<secret>{slash}{tail}"
