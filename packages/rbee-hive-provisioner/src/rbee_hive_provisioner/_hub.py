"""The Hugging Face hub's HTTP protocol, as huggingface_hub speaks it.

- ``GET {endpoint}/api/models/{repo}/revision/{revision}``: the commit (``sha``) and the file
  list (``siblings[].rfilename``); only needed when the reference names no file.
- ``HEAD {endpoint}/{repo}/resolve/{revision}/{file}``, following only redirects that stay on
  the hub's origin (a renamed repository), not the one to the CDN: ``X-Repo-Commit``,
  ``X-Linked-Size`` or ``Content-Length``, ``X-Linked-Etag`` or ``ETag`` (for LFS files the
  SHA-256, quoted), read from the hub's own answer.
- ``GET`` on the same URL, following redirects, with ``Range: bytes=N-`` to resume.

``Authorization: Bearer <HF_TOKEN>`` goes with every request when a token is configured
(aiohttp drops it on a redirect to another origin); the token is never logged or shown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import attrs

from rbee_hive_provisioner._cache import is_commit_hash, is_sha256
from rbee_hive_provisioner._choice import choose_gguf
from rbee_hive_provisioner._ref import ModelRef
from rbee_hive_provisioner.exceptions import (
    DownloadFailed,
    GatedModel,
    ModelNotFound,
    ProvisionerError,
)

log = logging.getLogger("rbee_hive_provisioner")

_MAX_HUB_REDIRECTS = 5


@attrs.frozen
class RemoteFile:
    """One file on the hub, resolved to a commit, with the size and ETag the hub announced."""

    repo: str
    revision: str
    file: str
    commit: str
    etag: str
    size: int | None
    url: str

    @property
    def ref(self) -> ModelRef:
        """The reference naming this file."""
        return ModelRef(provider="hf", repo=self.repo, file=self.file, revision=self.revision)

    @property
    def sha256(self) -> str | None:
        """The SHA-256 to verify against: the ETag of an LFS file, None for a plain git file."""
        return self.etag if is_sha256(self.etag) else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def normalize_etag(value: str | None) -> str | None:
    """``W/"abc"`` and ``"abc"`` both become ``abc`` (huggingface_hub names blobs so)."""
    if value is None:
        return None
    value = value.strip()
    value = value.removeprefix("W/")
    return value.strip('"') or None


def hub_error(status: int, headers: Any, what: str) -> ProvisionerError:
    """The provisioner error for a failed hub answer about ``what``."""
    error_code = headers.get("X-Error-Code", "")
    if status == 404 or error_code in {"RepoNotFound", "EntryNotFound", "RevisionNotFound"}:
        return ModelNotFound(
            f"the hub has no {what} (HTTP {status}); check the spelling of the reference, or "
            "set HF_TOKEN if the repository is private"
        )
    if status in {401, 403}:
        return GatedModel(
            f"the hub refused access to {what} (HTTP {status}): the model is gated or private. "
            "Accept its terms on the model page and set HF_TOKEN to a token of that account "
            "(a token that was set may be invalid or lack read access)"
        )
    return DownloadFailed(f"the hub answered HTTP {status} for {what}; will retry if possible")


class HubClient:
    """Talks to one hub endpoint through an aiohttp session owned by the caller."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, token: str | None):
        self._session = session
        self._endpoint = endpoint
        self._token = token

    def __repr__(self) -> str:
        return f"<HubClient {self._endpoint} token={'set' if self._token else 'none'}>"

    @property
    def endpoint(self) -> str:
        """The hub's base URL."""
        return self._endpoint

    def headers(self, **extra: str) -> dict[str, str]:
        """Request headers: the bearer token when configured, plus ``extra``."""
        headers = {"Accept-Encoding": "identity", "User-Agent": "rbee-hive"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra)
        return headers

    def resolve_url(self, repo: str, revision: str, file: str) -> str:
        """``{endpoint}/{repo}/resolve/{revision}/{file}``, revision fully quoted."""
        return f"{self._endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(file)}"

    async def list_files(self, repo: str, revision: str) -> tuple[str, list[str]]:
        """The commit a revision points to and the repository's file names at it."""
        url = f"{self._endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
        what = f"repository {repo} at revision {revision}"
        try:
            async with self._session.get(url, headers=self.headers()) as resp:
                if resp.status != 200:
                    raise hub_error(resp.status, resp.headers, what)
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise DownloadFailed(
                f"could not list the files of {what} at {self._endpoint}: "
                f"{type(err).__name__}; check the network and HF_ENDPOINT"
            ) from err
        try:
            commit = str(data["sha"])
            files = [str(s["rfilename"]) for s in data["siblings"]]
        except (KeyError, TypeError) as err:
            raise DownloadFailed(
                f"the hub's listing of {what} lacks 'sha' or 'siblings[].rfilename'; is "
                f"{self._endpoint} (HF_ENDPOINT) a Hugging Face hub?"
            ) from err
        return commit, files

    async def resolve(self, ref: ModelRef, preference: Sequence[str]) -> RemoteFile:
        """Choose the file when the reference names none, then read its metadata (HEAD)."""
        if ref.repo is None:
            raise ValueError(f"{ref} is not a hub reference")
        repo, revision, file = ref.repo, ref.revision, ref.file
        listed_commit: str | None = None
        if file is None:
            listed_commit, files = await self.list_files(repo, revision)
            file = choose_gguf(repo, revision, files, preference)
        url = self.resolve_url(repo, revision, file)
        what = f"file {file} in repository {repo} at revision {revision}"
        try:
            headers = await self._head(url, what)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise DownloadFailed(
                f"could not reach {self._endpoint} for {what}: {type(err).__name__}; check "
                "the network and HF_ENDPOINT"
            ) from err
        commit = headers.get("X-Repo-Commit") or listed_commit
        if commit is None and is_commit_hash(revision):
            commit = revision
        etag = normalize_etag(headers.get("X-Linked-Etag") or headers.get("ETag"))
        if commit is None or etag is None:
            raise DownloadFailed(
                f"the hub's answer for {what} lacks the X-Repo-Commit or ETag header, so the "
                f"file cannot be placed in the cache; is {self._endpoint} (HF_ENDPOINT) a "
                "Hugging Face hub?"
            )
        size_text = headers.get("X-Linked-Size") or headers.get("Content-Length")
        size = int(size_text) if size_text and size_text.isdigit() else None
        return RemoteFile(repo, revision, file, commit, etag, size, url)

    async def _head(self, url: str, what: str) -> Any:
        # Follow redirects on the hub's origin (a renamed repository); one to another origin
        # goes to the CDN, and the hub's X-Linked-* headers are on the redirect itself.
        for _ in range(_MAX_HUB_REDIRECTS + 1):
            async with self._session.head(
                url, headers=self.headers(), allow_redirects=False
            ) as resp:
                target = urljoin(url, resp.headers.get("Location", ""))
                if 300 <= resp.status < 400 and _origin(target) == _origin(self._endpoint):
                    url = target
                    continue
                if resp.status >= 400:
                    raise hub_error(resp.status, resp.headers, what)
                return resp.headers
        raise DownloadFailed(f"too many redirects while resolving {what}")

    def get(self, url: str, offset: int, stall_timeout: float) -> Any:
        """Start a GET of ``url`` from byte ``offset`` (a context manager for the response)."""
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=stall_timeout, sock_read=stall_timeout
        )
        return self._session.get(
            url, headers=self.headers(**extra), allow_redirects=True, timeout=timeout
        )
