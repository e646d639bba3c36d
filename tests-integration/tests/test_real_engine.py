"""A real engine: llama-cpp-python's OpenAI-compatible server, on a model the test writes."""

from __future__ import annotations

import aiohttp
import pytest

from hive_harness import DaemonFactory, pids_mentioning
from tiny_gguf import write_tiny_llama

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_llama_cpp_server_is_spawned_serves_tokens_and_is_stopped(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"RBEE_HIVE_PROBE_TIMEOUT": "5", "RBEE_HIVE_PROBE_INTERVAL": "5"})
    model = write_tiny_llama(hive.tmp / "models" / "tiny-llama.gguf")
    status, body = await hive.call(
        "POST",
        "/v1/workers/spawn",
        {"model_ref": f"file:{model}", "backend": "cpu", "device": 0, "engine": "openai"},
    )
    assert status == 200, body
    worker = await hive.wait_for(
        body["worker_id"], lambda w: w["state"] == "idle", timeout=90, what="idle"
    )
    assert worker["engine"] == "openai"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        session.post(
            f"{worker['url']}/v1/completions",
            json={"prompt": "The sky is", "max_tokens": 8, "temperature": 0.0},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        completion = await response.json()
    assert completion["usage"]["completion_tokens"] > 0
    assert isinstance(completion["choices"][0]["text"], str)
    status, stopped = await hive.call("DELETE", f"/v1/workers/{body['worker_id']}")
    assert status == 200, stopped
    assert stopped["outcome"] in ("graceful", "forced")
    assert pids_mentioning(str(model)) == []
