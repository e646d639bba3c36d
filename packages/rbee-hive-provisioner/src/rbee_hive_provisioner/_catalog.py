"""The catalog: which models this hive has, in SQLite under the state folder.

WAL journal, ``synchronous=FULL``, every write in one transaction, so a ``kill -9`` leaves
either the old or the new row. The schema version is ``PRAGMA user_version``; ``MIGRATIONS``
lists the steps, and a catalog at version N runs steps N+1.. when it opens. A file SQLite
cannot read is moved aside to ``catalog.sqlite.corrupt-<time>`` and the catalog is rebuilt
from the Hugging Face cache on disk, with a WARNING saying so.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import attrs

from rbee_hive_provisioner._cache import CachedFile, scan_cache
from rbee_hive_provisioner._ref import ModelRef
from rbee_hive_provisioner.exceptions import ProvisionerError

log = logging.getLogger("rbee_hive_provisioner")

CATALOG_FILE = "catalog.sqlite"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE models (
            reference TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            repo TEXT NOT NULL,
            revision TEXT NOT NULL,
            commit_hash TEXT NOT NULL,
            file TEXT NOT NULL,
            local_path TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT,
            downloaded_at REAL NOT NULL
        )""",
        # A reference without a file (hf:ORG/REPO) remembers which file it was resolved to.
        """CREATE TABLE aliases (
            alias TEXT PRIMARY KEY,
            reference TEXT NOT NULL REFERENCES models(reference) ON DELETE CASCADE
        )""",
    ),
)
"""Schema steps; step i takes the catalog from user_version i to i+1. Only ever append."""

# Literal SQL only: values always travel as ? parameters.
_INSERT = (
    "INTO models (reference, provider, repo, revision, commit_hash, file, local_path, size, "
    "sha256, downloaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT m.reference, m.provider, m.repo, m.revision, m.commit_hash, m.file, m.local_path, "
    "m.size, m.sha256, m.downloaded_at FROM models m"
)


@attrs.frozen
class CatalogEntry:
    """One model in the catalog; ``reference`` is canonical and always names the file."""

    reference: str
    provider: str
    repo: str
    revision: str
    commit: str
    file: str
    local_path: Path
    size: int
    sha256: str | None
    downloaded_at: datetime

    @property
    def ref(self) -> ModelRef:
        """The reference as a ``ModelRef``."""
        return ModelRef.parse(self.reference)

    @classmethod
    def from_cache(cls, found: CachedFile, downloaded_at: datetime | None = None) -> CatalogEntry:
        """The entry for a complete file found in the HF cache."""
        ref = ModelRef(provider="hf", repo=found.repo, file=found.file, revision=found.revision)
        if downloaded_at is None:
            downloaded_at = datetime.fromtimestamp(found.path.stat().st_mtime, UTC)
        return cls(
            reference=str(ref),
            provider="hf",
            repo=found.repo,
            revision=found.revision,
            commit=found.commit,
            file=found.file,
            local_path=found.path,
            size=found.size,
            sha256=found.sha256,
            downloaded_at=downloaded_at,
        )


def _row_to_entry(row: tuple[object, ...]) -> CatalogEntry:
    (reference, provider, repo, revision, commit, file, path, size, sha256, at) = row
    return CatalogEntry(
        reference=str(reference),
        provider=str(provider),
        repo=str(repo),
        revision=str(revision),
        commit=str(commit),
        file=str(file),
        local_path=Path(str(path)),
        size=int(str(size)),
        sha256=None if sha256 is None else str(sha256),
        downloaded_at=datetime.fromtimestamp(float(str(at)), UTC),
    )


class Catalog:
    """The SQLite catalog. Blocking; thread-safe (callers run it in a worker thread)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self._path = path
        self._conn = connection
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Catalog {self._path}>"

    @classmethod
    def open(cls, state_dir: Path, cache_root: Path) -> Catalog:
        """Open (create, migrate, or move aside and rebuild) ``<state_dir>/catalog.sqlite``."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / CATALOG_FILE
        fresh = not path.exists()
        try:
            conn = _connect_and_migrate(path)
        except sqlite3.DatabaseError as err:
            aside = _move_aside(path)
            log.warning(
                "catalog %s is corrupt (%s); moved it to %s and rebuilding the catalog from the "
                "model cache %s",
                path,
                err,
                aside,
                cache_root,
            )
            conn = _connect_and_migrate(path)
            fresh = True
        catalog = cls(path, conn)
        if fresh:
            count = catalog.rebuild(cache_root)
            log.info("catalog %s created with %d models found in %s", path, count, cache_root)
        return catalog

    def rebuild(self, cache_root: Path) -> int:
        """Add every complete ``*.gguf`` of the HF cache that the catalog lacks; the count."""
        found = [CatalogEntry.from_cache(f) for f in scan_cache(cache_root)]
        with self._lock, self._transaction():
            for entry in found:
                self._conn.execute(
                    "INSERT OR IGNORE " + _INSERT,
                    _entry_values(entry),
                )
        return len(found)

    def upsert(self, entry: CatalogEntry, aliases: Iterable[str] = ()) -> None:
        """Insert or replace one model and the file-less references that resolved to it."""
        with self._lock, self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE " + _INSERT,
                _entry_values(entry),
            )
            for alias in aliases:
                self._conn.execute(
                    "INSERT OR REPLACE INTO aliases (alias, reference) VALUES (?, ?)",
                    (alias, entry.reference),
                )

    def get(self, reference: str) -> CatalogEntry | None:
        """The model for a canonical reference, with or without a file; None if absent."""
        with self._lock:
            row = self._conn.execute(
                _SELECT + " WHERE m.reference = ? UNION ALL " + _SELECT + " JOIN aliases a "
                "ON m.reference = a.reference WHERE a.alias = ? LIMIT 1",
                (reference, reference),
            ).fetchone()
        return None if row is None else _row_to_entry(row)

    def list(self) -> list[CatalogEntry]:
        """Every model, newest download first."""
        with self._lock:
            rows = self._conn.execute(
                _SELECT + " ORDER BY m.downloaded_at DESC, m.reference"
            ).fetchall()
        return [_row_to_entry(r) for r in rows]

    def delete(self, reference: str) -> None:
        """Remove one model (by its canonical reference) and its aliases."""
        with self._lock, self._transaction():
            self._conn.execute("DELETE FROM models WHERE reference = ?", (reference,))

    def path_in_use(self, local_path: Path) -> bool:
        """Whether any model row still points at ``local_path``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM models WHERE local_path = ? LIMIT 1", (str(local_path),)
            ).fetchone()
        return row is not None

    def totals(self) -> tuple[int, int]:
        """(number of models, sum of their sizes in bytes)."""
        with self._lock:
            count, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM models"
            ).fetchone()
        return int(count), int(size)

    def schema_version(self) -> int:
        """``PRAGMA user_version``."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        with self._lock:
            self._conn.close()

    def _transaction(self) -> sqlite3.Connection:
        # sqlite3's context manager commits on success and rolls back on an exception; with
        # isolation_level=None we open the transaction ourselves.
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn


def _entry_values(entry: CatalogEntry) -> tuple[object, ...]:
    return (
        entry.reference,
        entry.provider,
        entry.repo,
        entry.revision,
        entry.commit,
        entry.file,
        str(entry.local_path),
        entry.size,
        entry.sha256,
        entry.downloaded_at.timestamp(),
    )


def _connect_and_migrate(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise sqlite3.DatabaseError(f"integrity check failed: {check[:3]}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise ProvisionerError(
                f"catalog {path} has schema version {version} but this rbee-hive knows "
                f"versions up to {len(MIGRATIONS)}; upgrade rbee-hive or use another state folder"
            )
        for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            for step in steps:
                conn.execute(step)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.replace(aside.with_name(aside.name + suffix))
    return aside
