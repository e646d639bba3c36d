"""The supervisor's HTTP to workers (probes, readiness, shutdown) behind a small seam."""

from __future__ import annotations

from typing import Protocol

import aiohttp
import attrs

MAX_BODY = 256 * 1024
"""What is kept of an answer's body; a worker's probe answers are small."""


@attrs.frozen
class HttpAnswer:
    """What a worker answered: a status, or why there was none."""

    status: int | None
    error: str | None = None
    body: bytes = attrs.field(default=b"", repr=False)
    """The first ``MAX_BODY`` bytes of the answer (activity probes read it)."""

    @property
    def ok(self) -> bool:
        """2xx for a probe or a shutdown request (readiness checks want exactly 200)."""
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        """``HTTP 500`` or the transport error, for a log line."""
        return f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")


class WorkerHttp(Protocol):
    """Unauthenticated requests to a worker's own port."""

    async def get(self, url: str, within: float) -> HttpAnswer:
        """GET ``url``; never raises for HTTP or transport errors."""
        ...

    async def post(self, url: str, within: float) -> HttpAnswer:
        """POST ``url`` with no body; never raises for HTTP or transport errors."""
        ...


class AiohttpWorkerHttp:
    """``WorkerHttp`` over one shared aiohttp ``ClientSession`` (no auth, no proxies)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<AiohttpWorkerHttp closed={self._session.closed}>"

    async def get(self, url: str, within: float) -> HttpAnswer:
        """GET ``url`` within ``within`` seconds."""
        return await self._request("GET", url, within)

    async def post(self, url: str, within: float) -> HttpAnswer:
        """POST ``url`` with no body within ``within`` seconds."""
        return await self._request("POST", url, within)

    async def _request(self, method: str, url: str, within: float) -> HttpAnswer:
        try:
            async with self._session.request(
                method,
                url,
                timeout=aiohttp.ClientTimeout(total=within),
                allow_redirects=False,
            ) as response:
                body = bytearray()
                while len(body) < MAX_BODY:
                    chunk = await response.content.read(MAX_BODY - len(body))
                    if not chunk:
                        break
                    body += chunk
                return HttpAnswer(response.status, body=bytes(body))
        except TimeoutError:
            return HttpAnswer(None, f"no answer within {within:g} s")
        except (aiohttp.ClientError, OSError) as err:
            return HttpAnswer(None, f"{type(err).__name__}: {err}")


def new_session() -> aiohttp.ClientSession:
    """The session workers are probed with: no proxy from the environment, no cookie jar."""
    return aiohttp.ClientSession(
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
    )
