"""``HiveClient``: the typed client of this API, for the CLI and other rbee services."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp

from rbee_hive_http_server.exceptions import HiveClientError


class HiveClient:
    """Talks to one running hive. Use as ``async with HiveClient(address, token) as hive:``.

    ``address`` is ``HOST:PORT`` or a base URL. Every failure raises ``HiveClientError`` whose
    message names the address it tried.
    """

    def __init__(self, address: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = address if "://" in address else f"http://{address}"
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
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        limit: float | None = None,
    ) -> Any:
        url = self.base_url + path
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body
        if limit is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=limit, sock_connect=5)
        try:
            async with self._http.request(method, url, **kwargs) as resp:
                text = await resp.text()
                return self._decode(resp.status, text)
        except aiohttp.ClientConnectionError as err:
            raise HiveClientError(
                f"could not reach the hive daemon at {self.base_url} ({err}); is "
                "`rbee-hive daemon` running there? Set --addr or RBEE_HIVE_ADDR",
                address=self.base_url,
            ) from err
        except TimeoutError as err:
            raise HiveClientError(
                f"the hive daemon at {self.base_url} did not answer {method} {path} in time",
                address=self.base_url,
            ) from err

    def _decode(self, status: int, text: str) -> Any:
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            data = None
        if status < 400:
            return data
        code = None
        message = text[:300]
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = data["error"].get("code")
            message = data["error"].get("message", message)
        raise HiveClientError(
            f"the hive at {self.base_url} answered {status} {code or ''}: {message}".replace(
                "  ", " "
            ),
            address=self.base_url,
            status=status,
            code=code,
        )

    # ------------------------------------------------------------------ health
    async def health(self) -> dict[str, Any]:
        """``GET /v1/health``."""
        result: dict[str, Any] = await self._call("GET", "/v1/health", limit=5)
        return result

    # ------------------------------------------------------------------ workers
    async def spawn(
        self,
        model_ref: str,
        *,
        backend: str = "cpu",
        device: int | str = 0,
        engine: str | None = None,
    ) -> dict[str, Any]:
        """Start a worker; returns ``{worker_id, url, state}``."""
        body: dict[str, Any] = {"model_ref": model_ref, "backend": backend, "device": device}
        if engine:
            body["engine"] = engine
        result: dict[str, Any] = await self._call("POST", "/v1/workers/spawn", body=body)
        return result

    async def list_workers(self) -> list[dict[str, Any]]:
        """Every worker, as the JSON records of ``GET /v1/workers/list``."""
        result = await self._call("GET", "/v1/workers/list")
        workers: list[dict[str, Any]] = result["workers"]
        return workers

    async def worker(self, worker_id: str) -> dict[str, Any]:
        """One worker."""
        result: dict[str, Any] = await self._call("GET", f"/v1/workers/{worker_id}")
        return result

    async def stop_worker(self, worker_id: str) -> dict[str, Any]:
        """Stop a worker for good; returns how it ended."""
        result: dict[str, Any] = await self._call("DELETE", f"/v1/workers/{worker_id}", limit=120)
        return result

    async def worker_logs(self, worker_id: str, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the worker's log."""
        result = await self._call(
            "GET", f"/v1/workers/{worker_id}/logs", params={"lines": str(lines)}
        )
        out: list[str] = result["lines"]
        return out

    # ------------------------------------------------------------------ models
    async def download(self, model_ref: str) -> dict[str, Any]:
        """Start or join a download; ``{download_id, local_path}``."""
        result: dict[str, Any] = await self._call(
            "POST", "/v1/models/download", body={"model_ref": model_ref}
        )
        return result

    async def progress(self, download_id: str) -> AsyncIterator[dict[str, Any]]:
        """Follow a download's SSE stream; yields each event until ``[DONE]``."""
        url = self.base_url + "/v1/models/download/progress"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        try:
            async with self._http.get(url, params={"id": download_id}, timeout=timeout) as resp:
                if resp.status >= 400:
                    self._decode(resp.status, await resp.text())
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    yield json.loads(payload)
        except aiohttp.ClientConnectionError as err:
            raise HiveClientError(
                f"lost the progress stream from {self.base_url}: {err}", address=self.base_url
            ) from err

    async def models(self) -> list[dict[str, Any]]:
        """The catalog."""
        result = await self._call("GET", "/v1/models")
        models: list[dict[str, Any]] = result["models"]
        return models

    async def downloads(self) -> list[dict[str, Any]]:
        """Active and recent downloads."""
        result = await self._call("GET", "/v1/models/downloads")
        downloads: list[dict[str, Any]] = result["downloads"]
        return downloads

    async def remove_model(self, model_ref: str) -> dict[str, Any]:
        """Remove a model from the catalog."""
        result: dict[str, Any] = await self._call(
            "DELETE", "/v1/models", params={"model_ref": model_ref}
        )
        return result

    async def verify_model(self, model_ref: str) -> dict[str, Any]:
        """Re-hash a model."""
        result: dict[str, Any] = await self._call(
            "POST", "/v1/models/verify", body={"model_ref": model_ref}, limit=3600
        )
        return result

    # ------------------------------------------------------------------ resources
    async def devices(self) -> dict[str, Any]:
        """``GET /v1/devices``."""
        result: dict[str, Any] = await self._call("GET", "/v1/devices")
        return result

    async def capacity(
        self, model_ref: str, backend: str = "cpu", device: int | str = 0
    ) -> dict[str, Any]:
        """``GET /v1/capacity``."""
        result: dict[str, Any] = await self._call(
            "GET",
            "/v1/capacity",
            params={"model_ref": model_ref, "backend": backend, "device": str(device)},
        )
        return result
