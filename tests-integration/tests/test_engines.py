"""A fresh install without llm-worker-rbee (issue 9.7): the daemon says so when it starts, and a
spawn on that engine is refused at once, naming the way out, with nothing registered, reserved
or downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive_harness import DaemonFactory

pytestmark = pytest.mark.anyio


async def test_a_spawn_on_a_missing_llm_worker_rbee_is_refused_at_once_naming_the_fix(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    absent = tmp_path / "not-installed" / "llm-worker-rbee"
    hive = start_daemon(args=["--worker-binary", str(absent)])

    for model_ref in (hive.model_ref, "hf:acme/never-downloaded:model.gguf"):
        status, body = await hive.call(
            "POST",
            "/v1/workers/spawn",
            {"model_ref": model_ref, "backend": "cpu", "device": 0, "model_path": ""},
        )
        assert status == 502, body
        assert body["error"]["code"] == "WORKER_BINARY_NOT_FOUND"
        assert str(absent) in body["error"]["message"]
        assert "rbee-hive[llama-cpp]" in body["error"]["message"]

    # Said at start, before the API answered (the socket is bound, hence "healthy", earlier).
    assert "default engine 'rbee' cannot start workers" in hive.output()
    status, listing = await hive.call("GET", "/v1/workers/list")
    assert (status, listing) == (200, {"workers": []})
    status, downloads = await hive.call("GET", "/v1/models/downloads")
    assert status == 200, downloads
    assert downloads == {"downloads": []}
