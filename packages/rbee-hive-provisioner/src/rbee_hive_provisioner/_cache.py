"""The Hugging Face cache layout, shared with huggingface_hub, llama.cpp and vLLM.

One folder per repository, ``models--ORG--REPO``, holding::

    blobs/<sha256>               the file's bytes, named by the hub's ETag (the SHA-256 of LFS
                                 files); a download in progress is blobs/<sha256>.incomplete
    snapshots/<commit>/<file>    a relative symlink to ../../blobs/<sha256>
    refs/<revision>              the commit hash the revision (a branch or tag) pointed to

A blob is renamed into place only after its hash was verified, and the snapshot link is made
after that, so a partial file is never visible under ``snapshots/``.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs

from rbee_hive_provisioner._choice import is_gguf
from rbee_hive_provisioner._ref import ModelRef
from rbee_hive_provisioner.exceptions import InvalidModelRef

log = logging.getLogger("rbee_hive_provisioner")

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_commit_hash(text: str) -> bool:
    """Whether a revision is a full 40-hex commit hash (no ``refs/`` file is written then)."""
    return _COMMIT.fullmatch(text) is not None


def is_sha256(text: str) -> bool:
    """Whether an ETag/blob name is a lowercase hex SHA-256 (the hub's LFS ETag)."""
    return _SHA256.fullmatch(text) is not None


@attrs.frozen
class CachedFile:
    """A complete file found in the cache: where it is and what the layout says about it."""

    repo: str
    revision: str
    commit: str
    file: str
    path: Path
    size: int
    sha256: str | None


@attrs.frozen
class RepoCache:
    """The cache folder of one repository under the cache ``root``."""

    root: Path
    repo: str

    @property
    def folder(self) -> Path:
        """``<root>/models--ORG--REPO``."""
        return self.root / ("models--" + self.repo.replace("/", "--"))

    def blob_path(self, etag: str) -> Path:
        """Where the verified bytes live."""
        return self.folder / "blobs" / etag

    def incomplete_path(self, etag: str) -> Path:
        """Where a download in progress (or interrupted, waiting for a resume) lives."""
        return self.folder / "blobs" / f"{etag}.incomplete"

    def lock_path(self, etag: str) -> Path:
        """The lock file huggingface_hub also takes while it writes this blob."""
        return self.root / ".locks" / self.folder.name / f"{etag}.lock"

    def snapshot_path(self, commit: str, file: str) -> Path:
        """The path users and engines open: ``snapshots/<commit>/<file>``."""
        return self.folder / "snapshots" / commit / file

    def read_ref(self, revision: str) -> str | None:
        """The commit a revision points to in this cache, or None."""
        if is_commit_hash(revision):
            return revision
        try:
            commit = (self.folder / "refs" / revision).read_text().strip()
        except OSError:
            return None
        return commit if is_commit_hash(commit) else None

    def write_ref(self, revision: str, commit: str) -> None:
        """Record that ``revision`` points to ``commit`` (atomically; not for commit hashes)."""
        if revision == commit:
            return
        path = self.folder / "refs" / revision
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, path)

    def link_snapshot(self, commit: str, file: str, etag: str) -> Path:
        """Point ``snapshots/<commit>/<file>`` at the blob with a relative symlink."""
        link = self.snapshot_path(commit, file)
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(self.blob_path(etag), link.parent)
        tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
        os.symlink(target, tmp)
        os.replace(tmp, link)
        return link

    def find(self, revision: str, file: str) -> CachedFile | None:
        """The complete file for ``revision``/``file`` if the cache has it."""
        commit = self.read_ref(revision)
        if commit is None:
            return None
        return _cached_file(self.repo, revision, commit, self.snapshot_path(commit, file), file)


def _linked_blobs(folder: Path) -> set[str]:
    linked: set[str] = set()
    for dirpath, _dirs, names in os.walk(folder / "snapshots"):
        for name in names:
            entry = Path(dirpath, name)
            if entry.is_symlink():
                linked.add(Path(os.readlink(entry)).name)
    return linked


def _cached_file(repo: str, revision: str, commit: str, path: Path, file: str) -> CachedFile | None:
    try:
        size = path.stat().st_size  # follows the link: a dangling link is not a model
    except OSError:
        return None
    blob = Path(os.readlink(path)).name if path.is_symlink() else ""
    return CachedFile(repo, revision, commit, file, path, size, blob if is_sha256(blob) else None)


def _repo_from_folder(name: str) -> str | None:
    parts = name.split("--")
    if len(parts) != 3 or parts[0] != "models":
        return None
    repo = f"{parts[1]}/{parts[2]}"
    try:
        ModelRef.parse(f"hf:{repo}")
    except InvalidModelRef:
        return None
    return repo


def scan_cache(root: Path) -> Iterator[CachedFile]:
    """Every complete ``*.gguf`` under ``snapshots/`` of every model repository in the cache.

    A snapshot some ``refs/`` file points to is reported once per such revision; a snapshot
    no ref points to is reported with its commit hash as the revision.
    """
    if not root.is_dir():
        return
    for folder in sorted(root.glob("models--*")):
        repo = _repo_from_folder(folder.name)
        if repo is None:
            log.warning("cache scan: skipping %s, not a models--ORG--REPO folder", folder)
            continue
        refs: dict[str, list[str]] = {}
        refs_dir = folder / "refs"
        if refs_dir.is_dir():
            for ref_file in sorted(p for p in refs_dir.rglob("*") if p.is_file()):
                commit = ref_file.read_text().strip()
                refs.setdefault(commit, []).append(ref_file.relative_to(refs_dir).as_posix())
        for snapshot in sorted(p for p in (folder / "snapshots").glob("*") if p.is_dir()):
            commit = snapshot.name
            for path in sorted(snapshot.rglob("*")):
                file = path.relative_to(snapshot).as_posix()
                if not is_gguf(file):
                    continue
                try:
                    ModelRef.parse(f"hf:{repo}:{file}")
                except InvalidModelRef:
                    log.warning("cache scan: skipping %s, its name is not a valid file name", path)
                    continue
                for revision in refs.get(commit, [commit]):
                    found = _cached_file(repo, revision, commit, path, file)
                    if found is not None:
                        yield found


def remove_snapshot_file(path: Path, file: str) -> None:
    """Delete ``snapshots/<commit>/<file>``, and its blob when no other snapshot links to it.

    ``path`` must have the cache layout's shape (``models--*/snapshots/<commit>/<file>``);
    anything else is left alone, with a warning, rather than deleting outside the cache.
    """
    snapshot_dir = path
    for _ in file.split("/"):
        snapshot_dir = snapshot_dir.parent
    folder = snapshot_dir.parent.parent
    if snapshot_dir.parent.name != "snapshots" or not folder.name.startswith("models--"):
        log.warning("not deleting %s: it is not inside a Hugging Face cache snapshot", path)
        return
    blob = Path(os.readlink(path)).name if path.is_symlink() else None
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != snapshot_dir.parent and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    if blob is not None and blob not in _linked_blobs(folder):
        (folder / "blobs" / blob).unlink(missing_ok=True)
