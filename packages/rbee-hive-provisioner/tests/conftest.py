"""Fixtures: a local server that speaks the Hugging Face hub's download protocol.

``hub`` serves repositories added with ``hub.add_repo``: the listing API, ``resolve`` (with
the X-Repo-Commit / X-Linked-Size / X-Linked-Etag headers and, for LFS files, a redirect to a
CDN on another origin, as on the real hub) and Range requests. Per file it counts GETs and
records every byte range it actually wrote, and it injects faults on request: reset the
connection at a fraction, stall, corrupt a byte, claim a longer Content-Length, ignore Range,
throttle.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import attrs
import pytest
from aiohttp import web

from rbee_hive_provisioner import ProvisionerSettings

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HF_VARIABLES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_ENDPOINT",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)
"""The environment huggingface_hub reads; each test starts without any of it."""
_PIECE = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_hf_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HF_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@attrs.define(eq=False)
class HubFile:
    """One file of a fixture repository, its faults and what the server did with it."""

    content: bytes
    lfs: bool = True
    reset_at: float | None = None  # close the connection after this fraction of the file
    resets: int = 1  # ... on this many GETs
    stall_at: float | None = None  # stop sending (keep the connection open) at this fraction
    stalls: int = 1
    corrupt: int = 0  # flip one byte in this many GETs
    lying_length: int = 0  # claim 1000 more bytes than sent, then close, on this many GETs
    announced_size: int | None = None  # what HEAD says, if not the truth
    ignore_range: bool = False
    bytes_per_second: int | None = None
    gets: int = 0
    range_headers: list[str | None] = attrs.Factory(list)
    served: list[tuple[int, int]] = attrs.Factory(list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def etag(self) -> str:
        if self.lfs:
            return self.sha256
        return hashlib.sha1(self.content).hexdigest()  # git's blob id, not security

    @property
    def bytes_served(self) -> int:
        return sum(end - start for start, end in self.served)

    @property
    def bytes_served_twice(self) -> int:
        """Bytes the server wrote more than once (0 when every resume started where it left)."""
        twice = 0
        reach = 0
        for start, end in sorted(self.served):
            twice += max(0, min(end, reach) - start)
            reach = max(reach, end)
        return twice


@attrs.define(eq=False)
class HubRepo:
    name: str
    files: dict[str, HubFile]
    commit: str = COMMIT
    gated: bool = False


@attrs.define(eq=False)
class HubServer:
    """The state of the fixture hub; ``url`` is its endpoint."""

    url: str = ""
    cdn_url: str = ""  # another origin, as the real hub's CDN: the token does not go there
    token: str | None = None
    repos: dict[str, HubRepo] = attrs.Factory(dict)
    requests: list[tuple[str, str, dict[str, str]]] = attrs.Factory(list)
    release: anyio.Event = attrs.Factory(anyio.Event)

    def add_repo(self, name: str, files: dict[str, bytes | HubFile], **kwargs: object) -> HubRepo:
        wrapped = {k: v if isinstance(v, HubFile) else HubFile(v) for k, v in files.items()}
        repo = HubRepo(name, wrapped, **kwargs)  # type: ignore[arg-type]  # test-only kwargs
        self.repos[name] = repo
        return repo

    def cdn_gets(self) -> int:
        return sum(f.gets for r in self.repos.values() for f in r.files.values())

    def _find(self, request: web.Request) -> tuple[HubRepo, str]:
        name = f"{request.match_info['org']}/{request.match_info['name']}"
        repo = self.repos.get(name)
        if repo is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"})
        revision = request.match_info["revision"]
        if revision not in {"main", repo.commit}:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RevisionNotFound"})
        return repo, revision

    def _check_access(self, request: web.Request, repo: HubRepo) -> None:
        if repo.gated and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPForbidden(headers={"X-Error-Code": "GatedRepo"})

    async def listing(self, request: web.Request) -> web.StreamResponse:
        self._log(request)
        repo, _revision = self._find(request)
        return web.json_response(
            {
                "id": repo.name,
                "sha": repo.commit,
                "siblings": [{"rfilename": f} for f in repo.files],
            }
        )

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        self._log(request)
        repo, _revision = self._find(request)
        self._check_access(request, repo)
        hub_file = repo.files.get(request.match_info["file"])
        if hub_file is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound"})
        size = (
            hub_file.announced_size
            if hub_file.announced_size is not None
            else len(hub_file.content)
        )
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{hub_file.etag}"'}
        if not hub_file.lfs:
            return await self._serve(request, hub_file, headers)
        headers |= {
            "X-Linked-Size": str(size),
            "X-Linked-Etag": f'"{hub_file.etag}"',
            "Location": f"{self.cdn_url}/cdn/{repo.name}/{request.match_info['file']}",
        }
        return web.Response(status=302, headers=headers)

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        self._log(request)
        repo = self.repos[f"{request.match_info['org']}/{request.match_info['name']}"]
        return await self._serve(request, repo.files[request.match_info["file"]], {})

    async def _serve(
        self, request: web.Request, f: HubFile, headers: dict[str, str]
    ) -> web.StreamResponse:
        size = len(f.content)
        start, status = 0, 200
        if request.method == "GET":
            f.gets += 1
            f.range_headers.append(request.headers.get("Range"))
        range_header = request.headers.get("Range")
        if range_header and not f.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers = headers | {"Content-Range": f"bytes {start}-{size - 1}/{size}"}
        body = memoryview(f.content)[start:]
        nth = f.gets
        if request.method == "GET" and nth <= f.corrupt:
            damaged = bytearray(body)
            damaged[len(damaged) // 2] ^= 0xFF
            body = memoryview(bytes(damaged))
        length = len(body) + (1000 if request.method == "GET" and nth <= f.lying_length else 0)
        response = web.StreamResponse(
            status=status,
            headers=headers | {"Content-Length": str(length), "Accept-Ranges": "bytes"},
        )
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        cut = _cut(f.reset_at, size, start) if nth <= f.resets else None
        stall = _cut(f.stall_at, size, start) if nth <= f.stalls else None
        pos = 0
        while pos < len(body):
            end = min(pos + _PIECE, len(body))
            for limit in (cut, stall):
                if limit is not None and pos <= limit < end:
                    end = limit
            if end > pos:
                await response.write(body[pos:end])
                f.served.append((start + pos, start + end))
                pos = end
            if pos == stall:
                await self.release.wait()
                break
            if pos == cut:
                break
            if f.bytes_per_second:
                await anyio.sleep((end - pos + _PIECE) / f.bytes_per_second)
        if pos < len(body) or length > len(body):
            # Let what was written reach the client, then drop the connection mid-body.
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    def _log(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, dict(request.headers)))


def _cut(fraction: float | None, size: int, start: int) -> int | None:
    if fraction is None:
        return None
    return max(int(size * fraction) - start, 0)


@pytest.fixture
async def hub() -> AsyncIterator[HubServer]:
    """A running fixture hub on a free loopback port."""
    server = HubServer()
    app = web.Application()
    app.router.add_get("/api/models/{org}/{name}/revision/{revision}", server.listing)
    app.router.add_route("*", "/{org}/{name}/resolve/{revision}/{file:.+}", server.resolve)
    app.router.add_route("*", "/cdn/{org}/{name}/{file:.+}", server.cdn)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    for _ in ("hub", "cdn"):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    (hub_host, hub_port), (cdn_host, cdn_port) = (a[:2] for a in runner.addresses)
    server.url = f"http://{hub_host}:{hub_port}"
    server.cdn_url = f"http://{cdn_host}:{cdn_port}"
    try:
        yield server
    finally:
        server.release.set()
        with anyio.move_on_after(5, shield=True):
            await runner.cleanup()


@pytest.fixture
def make_settings(tmp_path: Path, hub: HubServer) -> Callable[..., ProvisionerSettings]:
    """Settings pointing at the fixture hub, with a quick stall timeout and backoff."""

    def make(**overrides: object) -> ProvisionerSettings:
        values: dict[str, object] = {
            "state_dir": tmp_path / "state",
            "cache_dir": tmp_path / "cache",
            "endpoint": hub.url,
            "stall_timeout": 1.0,
            "max_attempts": 4,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "disk_reserve_bytes": 0,
        }
        values.update(overrides)
        return ProvisionerSettings(**values)  # type: ignore[arg-type]  # test-only overrides

    return make


def gguf_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes of ``size`` that start like a GGUF file (distinct per seed)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (b"GGUF" + block * (size // len(block) + 1))[:size]


@pytest.fixture
def make_gguf() -> Callable[..., bytes]:
    """``make_gguf(size, seed=0)``: deterministic GGUF-looking bytes."""
    return gguf_bytes
