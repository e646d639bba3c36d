"""Issue 4 through the daemon: spawns of uncached models, downloads with progress, the
catalog, and a download that survives the daemon being killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import anyio
import pytest

from hive_harness import RBEE_HIVE, Daemon, DaemonFactory, free_port
from hub_fixture import running_hub

pytestmark = pytest.mark.anyio

REPO = "rbee-test/Tiny-GGUF"
FILE = "tiny.Q4_K_M.gguf"


def cli(hive: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RBEE_HIVE), *args, "--addr", f"127.0.0.1:{hive.port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RBEE_HIVE_STATE_DIR": str(hive.state_dir)},
    )


async def test_a_spawn_of_an_uncached_model_provisions_then_runs(
    start_daemon: DaemonFactory,
) -> None:
    async with running_hub(free_port()) as hub:
        hub.add(REPO, FILE, b"GGUF" + os.urandom(3 * 1024 * 1024))
        hub.bytes_per_second = 4 * 1024 * 1024  # under a second: provisioning is observable
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        status, body = await hive.spawn(model_ref=f"hf:{REPO}")
        assert status == 200, body
        assert body["state"] == "provisioning"
        worker = await hive.wait_for(
            body["worker_id"], lambda w: w["state"] == "idle", timeout=60, what="idle"
        )
        assert worker["model_path"].endswith(FILE)
        assert "/snapshots/" in worker["model_path"]
        status, catalog = await hive.call("GET", "/v1/models")
        assert [m["file"] for m in catalog["models"]] == [FILE]
        # A model in use cannot be removed.
        status, refused = await hive.call("DELETE", f"/v1/models?model_ref=hf:{REPO}:{FILE}")
        assert status == 409
        assert refused["error"]["code"] == "MODEL_IN_USE"


async def test_a_download_that_fails_after_the_spawn_answered_leaves_the_worker_failed(
    start_daemon: DaemonFactory,
) -> None:
    async with running_hub(free_port()) as hub:
        hub.add(REPO, FILE, os.urandom(64 * 1024))
        hub.broken_gets = True
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        status, body = await hive.spawn(model_ref=f"hf:{REPO}")
        assert status == 200, body
        assert body["state"] == "provisioning"
        failed = await hive.wait_for(
            body["worker_id"], lambda w: w["state"] == "failed", timeout=90, what="failed"
        )
        assert "model download failed" in failed["reason"]
        assert failed["pid"] is None
        assert hub.gets >= 2  # it retried before giving up
        status, _ = await hive.call("GET", "/v1/health")
        assert status == 200  # the daemon carries on


async def test_an_unknown_repo_is_refused_up_front_with_nothing_registered(
    start_daemon: DaemonFactory,
) -> None:
    async with running_hub(free_port()) as hub:
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        status, body = await hive.spawn(model_ref="hf:nobody/nothing-here")
        assert status == 404, body
        assert body["error"]["code"] == "MODEL_NOT_FOUND"
        _, listing = await hive.call("GET", "/v1/workers/list")
        assert listing["workers"] == []


async def test_models_download_shows_progress_and_the_catalog_follows(
    start_daemon: DaemonFactory,
) -> None:
    async with running_hub(free_port()) as hub:
        sha = hub.add(REPO, FILE, os.urandom(2 * 1024 * 1024))
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        ref = f"hf:{REPO}:{FILE}"
        result = await anyio.to_thread.run_sync(lambda: cli(hive, "models", "download", ref))
        assert result.returncode == 0, result.stderr
        assert FILE in result.stdout
        listed = json.loads(cli(hive, "models", "list", "--json").stdout)
        assert listed["models"][0]["sha256"] == sha
        verified = cli(hive, "models", "verify", ref)
        assert verified.returncode == 0, verified.stderr
        assert "OK" in verified.stdout
        again = await hive.call("POST", "/v1/models/download", {"model_ref": ref})
        assert again[1]["download_id"] == "cached"
        removed = cli(hive, "models", "rm", ref)
        assert removed.returncode == 0, removed.stderr
        assert json.loads(cli(hive, "models", "list", "--json").stdout) == {"models": []}


async def test_a_late_subscriber_gets_the_final_state(start_daemon: DaemonFactory) -> None:
    async with running_hub(free_port()) as hub:
        hub.add(REPO, FILE, os.urandom(256 * 1024))
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        _, started = await hive.call("POST", "/v1/models/download", {"model_ref": f"hf:{REPO}"})
        download_id = started["download_id"]
        with anyio.fail_after(30):
            while True:
                _, downloads = await hive.call("GET", "/v1/models/downloads")
                if downloads["downloads"] and downloads["downloads"][0]["stage"] == "complete":
                    break
                await anyio.sleep(0.1)
        status, text = await hive.call("GET", f"/v1/models/download/progress?id={download_id}")
        assert status == 200
        frames = [line for line in str(text).splitlines() if line.startswith("data:")]
        assert json.loads(frames[0][5:])["stage"] == "complete"
        assert frames[-1] == "data: [DONE]"


async def test_kill_9_mid_download_then_restart_resumes_without_refetching(
    start_daemon: DaemonFactory,
) -> None:
    async with running_hub(free_port()) as hub:
        size = 6 * 1024 * 1024
        hub.add(REPO, FILE, os.urandom(size))
        hub.bytes_per_second = 2 * 1024 * 1024
        hive = start_daemon({"HF_ENDPOINT": hub.url})
        ref = f"hf:{REPO}:{FILE}"
        _, started = await hive.call("POST", "/v1/models/download", {"model_ref": ref})
        assert started["download_id"] != "cached"
        with anyio.fail_after(30):
            while sum(end - start for start, end in hub.served) < size // 3:
                await anyio.sleep(0.05)
        hive.proc.send_signal(signal.SIGKILL)
        hive.proc.wait(timeout=10)
        hub_cache = hive.tmp / "hub"
        snapshots = list(hub_cache.rglob("snapshots/*/*"))
        assert snapshots == []  # no partial file is ever visible as a model
        partial = list(hub_cache.rglob("*.incomplete"))
        assert len(partial) == 1
        hub.bytes_per_second = None
        # The same state folder and cache, a new daemon.
        second = start_daemon(
            {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(hub_cache)},
            args=["--state-dir", str(hive.state_dir)],
        )
        status, catalog = await second.call("GET", "/v1/models")
        assert status == 200
        assert catalog["models"] == []  # the catalog never lists an unfinished download
        status, resumed = await second.call("POST", "/v1/models/download", {"model_ref": ref})
        assert status == 200, resumed
        assert resumed["download_id"] != "cached"
        with anyio.fail_after(60):
            while True:
                _, catalog = await second.call("GET", "/v1/models")
                if catalog["models"]:
                    break
                await anyio.sleep(0.1)
        assert catalog["models"][0]["size_bytes"] == size
        assert hub.bytes_served_twice == 0
