"""``HiveClient``: the typed client of this API, for the CLI, queen-rbee and other services.

It speaks through the same wire classes and converter as the routes, returns attrs objects,
and imports only aiohttp, attrs/cattrs and rbee_hive_registry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from rbee_hive_http_server._wire import (
    Download,
    DownloadList,
    DownloadStarted,
    ErrorBody,
    Health,
    Model,
    ModelList,
    ModelRequest,
    ProgressEvent,
    Removed,
    SpawnRequest,
    SpawnResponse,
    StopResult,
    Verification,
    WorkerList,
    WorkerLogs,
    describe_error,
    from_json,
    to_json,
)
from rbee_hive_http_server.exceptions import HiveClientError
from rbee_hive_registry import WorkerInfo

T = TypeVar("T")


class HiveClient:
    """Talks to one running hive. Use as ``async with HiveClient(address, token) as hive:``.

    ``address`` is ``HOST:PORT`` or a base URL. Every failure raises ``HiveClientError``,
    carrying the error ``code``, HTTP ``status`` and the address it tried.
    """

    def __init__(self, address: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = (address if "://" in address else f"http://{address}").rstrip("/")
        self._headers = {} if not token else {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<HiveClient {self.base_url} token={'set' if self._headers else 'none'}>"

    async def __aenter__(self) -> HiveClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use HiveClient inside 'async with'")
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[T],
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        limit: float | None = None,
    ) -> T:
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = to_json(body)
        if limit is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=limit, sock_connect=5)
        try:
            async with self._http.request(method, self.base_url + path, **kwargs) as resp:
                text = await resp.text()
        except aiohttp.ClientConnectionError as err:
            raise self._unreachable(err) from err
        except TimeoutError as err:
            raise HiveClientError(
                f"the hive daemon at {self.base_url} did not answer {method} {path} in time",
                address=self.base_url,
            ) from err
        if resp.status >= 400:
            raise self._refusal(resp.status, text)
        return self._read(text, answer, f"{method} {path}")

    def _unreachable(self, err: Exception) -> HiveClientError:
        return HiveClientError(
            f"could not reach the hive daemon at {self.base_url} ({err}); is "
            "`rbee-hive daemon` running there? Set --addr or RBEE_HIVE_ADDR",
            address=self.base_url,
        )

    def _read(self, text: str, answer: type[T], what: str) -> T:
        try:
            return from_json(json.loads(text), answer)
        except Exception as err:
            problems = (
                [str(err)] if isinstance(err, ValueError) else describe_error(err, answer.__name__)
            )
            raise HiveClientError(
                f"the hive at {self.base_url} answered {what} with a body this client cannot "
                f"read ({'; '.join(problems)[:300]}); are the hive and this client the same "
                "version?",
                address=self.base_url,
            ) from err

    def _refusal(self, status: int, text: str) -> HiveClientError:
        try:
            error = from_json(json.loads(text), ErrorBody).error
        except Exception:
            # Not the hive's envelope (a proxy in between, a different service on that port).
            return HiveClientError(
                f"the hive at {self.base_url} answered {status}: {text[:300]}",
                address=self.base_url,
                status=status,
            )
        return HiveClientError(
            f"the hive at {self.base_url} answered {status} {error.code}: {error.message}",
            address=self.base_url,
            status=status,
            code=error.code,
            details=error.details,
        )

    # ------------------------------------------------------------------ health
    async def health(self) -> Health:
        """``GET /v1/health``."""
        return await self._call("GET", "/v1/health", Health, limit=5)

    # ------------------------------------------------------------------ workers
    async def spawn(
        self,
        model_ref: str,
        *,
        backend: str = "cpu",
        device: int | str = 0,
        engine: str | None = None,
    ) -> SpawnResponse:
        """Start a worker; it answers at once, ``loading`` (or ``provisioning`` while its model
        downloads)."""
        body = SpawnRequest(model_ref=model_ref, backend=backend, device=device, engine=engine)
        return await self._call("POST", "/v1/workers/spawn", SpawnResponse, body=body)

    async def list_workers(self) -> list[WorkerInfo]:
        """Every worker, in registration order."""
        return (await self._call("GET", "/v1/workers/list", WorkerList)).workers

    async def worker(self, worker_id: str) -> WorkerInfo:
        """One worker."""
        return await self._call("GET", f"/v1/workers/{quote(worker_id, safe='')}", WorkerInfo)

    async def stop_worker(self, worker_id: str) -> StopResult:
        """Stop a worker for good; says how it ended."""
        path = f"/v1/workers/{quote(worker_id, safe='')}"
        return await self._call("DELETE", path, StopResult, limit=120)

    async def worker_logs(self, worker_id: str, lines: int = 100) -> WorkerLogs:
        """The last ``lines`` lines of the worker's log."""
        path = f"/v1/workers/{quote(worker_id, safe='')}/logs"
        return await self._call("GET", path, WorkerLogs, params={"lines": str(lines)})

    # ------------------------------------------------------------------ models
    async def download(self, model_ref: str) -> DownloadStarted:
        """Start or join a download (``download_id`` is ``"cached"`` when it is here)."""
        body = ModelRequest(model_ref=model_ref)
        return await self._call("POST", "/v1/models/download", DownloadStarted, body=body)

    async def progress(self, download_id: str) -> AsyncIterator[ProgressEvent]:
        """Follow a download's SSE stream: its current state, each change, until it ends."""
        url = self.base_url + "/v1/models/download/progress"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        try:
            async with self._http.get(url, params={"id": download_id}, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise self._refusal(resp.status, await resp.text())
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue  # keep-alive comments
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    yield self._read(payload, ProgressEvent, "a progress frame")  # type: ignore[arg-type]  # a union alias is a valid cattrs target
        except aiohttp.ClientConnectionError as err:
            raise HiveClientError(
                f"lost the progress stream from {self.base_url}: {err}", address=self.base_url
            ) from err

    async def models(self) -> list[Model]:
        """The catalog."""
        return (await self._call("GET", "/v1/models", ModelList)).models

    async def downloads(self) -> list[Download]:
        """Active downloads and the ones that ended in the last minutes."""
        return (await self._call("GET", "/v1/models/downloads", DownloadList)).downloads

    async def remove_model(self, model_ref: str) -> Model:
        """Remove a model from the catalog; answers the row that was removed."""
        params = {"model_ref": model_ref}
        return (await self._call("DELETE", "/v1/models", Removed, params=params)).removed

    async def verify_model(self, model_ref: str) -> Verification:
        """Re-hash a model against the SHA-256 recorded when it was downloaded."""
        body = ModelRequest(model_ref=model_ref)
        return await self._call("POST", "/v1/models/verify", Verification, body=body, limit=3600)

    # ------------------------------------------------------------------ resources
    async def devices(self) -> dict[str, Any]:
        """``GET /v1/devices``: RAM, disks and GPUs (an open JSON object)."""
        return await self._call("GET", "/v1/devices", dict[str, Any])

    async def capacity(
        self, model_ref: str, backend: str = "cpu", device: int | str = 0
    ) -> dict[str, Any]:
        """``GET /v1/capacity``: would it fit, with the figures (an open JSON object)."""
        params = {"model_ref": model_ref, "backend": backend, "device": str(device)}
        return await self._call("GET", "/v1/capacity", dict[str, Any], params=params)
