"""Issue 3: the real daemon supervising workers that speak the llm-worker-rbee contract."""

from __future__ import annotations

import os
import signal
import socket
import time

import anyio
import pytest

from hive_harness import DaemonFactory, pids_mentioning

pytestmark = pytest.mark.anyio


async def test_spawn_answers_then_the_worker_becomes_idle(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    status, body = await hive.spawn()
    assert status == 200, body
    assert set(body) == {"worker_id", "url", "state"}
    assert body["url"].startswith("http://127.0.0.1:")
    worker = await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    assert worker["pid"] > 0
    assert worker["engine"] == "rbee"
    status, listing = await hive.call("GET", "/v1/workers/list")
    assert [w["id"] for w in listing["workers"]] == [body["worker_id"]]


async def test_ten_concurrent_spawns_get_ten_distinct_free_ports(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon()
    results: list[dict[str, str]] = []

    async def one() -> None:
        status, body = await hive.spawn()
        assert status == 200, body
        results.append(body)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
    urls = {r["url"] for r in results}
    assert len(urls) == 10
    for r in results:
        await hive.wait_for(r["worker_id"], lambda w: w["state"] == "idle", what="idle")


async def test_a_port_held_by_another_process_is_skipped(start_daemon: DaemonFactory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # a port nobody else holds, at the range's start
        squatter.listen()
        held = squatter.getsockname()[1]
        hive = start_daemon({"RBEE_HIVE_PORT_RANGE": f"{held}-{min(held + 20, 65535)}"})
        status, body = await hive.spawn()
        assert status == 200, body
        assert not body["url"].endswith(f":{held}")
        await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")


async def test_a_missing_program_is_a_quick_structured_error_with_nothing_left(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon(args=["--worker-binary", "/nonexistent/llm-worker-rbee"])
    started = time.monotonic()
    status, body = await hive.spawn()
    assert time.monotonic() - started < 3
    assert status == 502
    assert body["error"]["code"] == "WORKER_BINARY_NOT_FOUND"
    assert "/nonexistent/llm-worker-rbee" in body["error"]["message"]
    _, listing = await hive.call("GET", "/v1/workers/list")
    assert listing["workers"] == []


async def test_a_worker_that_exits_at_once_is_reported_and_not_kept(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"FAKE_WORKER_MODE": "exit_now"})
    status, body = await hive.spawn()
    assert status == 502, body
    assert body["error"]["code"] == "WORKER_EXITED_EARLY"
    _, listing = await hive.call("GET", "/v1/workers/list")
    assert listing["workers"] == []
    assert pids_mentioning(str(hive.model)) == []


async def test_kill_9_is_detected_and_the_worker_restarted_with_a_new_pid(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon()
    _, body = await hive.spawn()
    worker_id = body["worker_id"]
    first = await hive.wait_for(worker_id, lambda w: w["state"] == "idle", what="idle")
    os.kill(first["pid"], signal.SIGKILL)
    second = await hive.wait_for(
        worker_id,
        lambda w: w["state"] == "idle" and w["pid"] not in (None, first["pid"]),
        what="restarted and idle again",
    )
    assert second["restart_count"] == 1
    assert second["last_restart"] is not None
    assert second["exit_code"] == -9


async def test_a_crash_loop_opens_the_breaker_and_the_worker_stays_failed(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon(
        {
            "FAKE_WORKER_MODE": "crash_after",
            "FAKE_WORKER_CRASH_AFTER_S": "0.05",
            "RBEE_HIVE_BREAKER_THRESHOLD": "3",
        }
    )
    _, body = await hive.spawn()
    failed = await hive.wait_for(
        body["worker_id"], lambda w: w["state"] == "failed", timeout=30, what="failed"
    )
    assert "crash loop" in failed["reason"]
    assert failed["pid"] is None
    await anyio.sleep(1.5)  # longer than any backoff: it must stay down
    assert (await hive.worker(body["worker_id"]))["state"] == "failed"
    assert pids_mentioning(str(hive.model)) == []


async def test_a_hung_worker_is_killed_at_the_stop_deadline(start_daemon: DaemonFactory) -> None:
    hive = start_daemon({"FAKE_WORKER_MODE": "hang", "RBEE_HIVE_STOP_TIMEOUT": "1"})
    _, body = await hive.spawn()
    worker = await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    started = time.monotonic()
    status, stopped = await hive.call("DELETE", f"/v1/workers/{body['worker_id']}")
    assert status == 200, stopped
    assert stopped["outcome"] == "forced"
    assert 0.9 < time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(worker["pid"], 0)
    audit = "".join(p.read_text() for p in (hive.state_dir / "audit").glob("*.jsonl"))
    assert '"event":"worker_kill"' in audit.replace(" ", "")


async def test_delete_stops_a_worker_for_good(start_daemon: DaemonFactory) -> None:
    hive = start_daemon()
    _, body = await hive.spawn()
    worker = await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    status, stopped = await hive.call("DELETE", f"/v1/workers/{body['worker_id']}")
    assert status == 200
    assert stopped["outcome"] == "graceful"  # the rbee engine sends SIGINT, the worker exits 0
    await anyio.sleep(1.0)
    status, _ = await hive.call("GET", f"/v1/workers/{body['worker_id']}")
    assert status == 404
    assert pids_mentioning(str(hive.model)) == []
    with pytest.raises(ProcessLookupError):
        os.kill(worker["pid"], 0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_every_worker_and_the_daemon_exits_0(
    start_daemon: DaemonFactory, signum: int
) -> None:
    hive = start_daemon()
    ids = []
    for _ in range(3):
        _, body = await hive.spawn()
        ids.append(body["worker_id"])
    for worker_id in ids:
        await hive.wait_for(worker_id, lambda w: w["state"] == "idle", what="idle")
    assert len(pids_mentioning(str(hive.model))) == 3
    started = time.monotonic()
    hive.signal(signum)
    assert hive.wait(timeout=15) == 0
    assert time.monotonic() - started < 10  # the shutdown deadline
    assert pids_mentioning(str(hive.model)) == []
    assert "SHUTDOWN COMPLETE: 3 workers" in hive.output()


async def test_spawns_during_shutdown_get_503(start_daemon: DaemonFactory) -> None:
    hive = start_daemon({"FAKE_WORKER_MODE": "hang", "RBEE_HIVE_STOP_TIMEOUT": "3"})
    _, body = await hive.spawn()
    await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    hive.signal(signal.SIGTERM)
    await anyio.sleep(0.3)  # the hung worker keeps the drain busy for 3 s
    status, refused = await hive.spawn()
    assert status == 503
    assert refused["error"]["code"] == "SHUTTING_DOWN"
    assert hive.wait(timeout=15) == 0


async def test_a_callback_without_the_secret_changes_nothing(start_daemon: DaemonFactory) -> None:
    hive = start_daemon({"FAKE_WORKER_MODE": "no_callback"})
    _, body = await hive.spawn()
    worker_id = body["worker_id"]
    ready = {
        "worker_id": worker_id,
        "url": body["url"],
        "model_ref": hive.model_ref,
        "backend": "cpu",
        "device": 0,
    }
    status, answer = await hive.call("POST", "/v1/workers/ready", ready)
    assert status == 401, answer
    status, answer = await hive.call("POST", "/v1/workers/ready/not-the-secret", ready)
    assert status == 401, answer
    assert (await hive.worker(worker_id))["state"] == "loading"


async def test_with_a_token_calls_need_it_and_health_stays_public(
    start_daemon: DaemonFactory,
) -> None:
    hive = start_daemon({"LLORCH_API_TOKEN": "s3cret-token-for-tests-7b1e9d3f5a"})
    status, body = await hive.call("GET", "/v1/workers/list")
    assert status == 401
    assert body["error"]["code"] == "MISSING_API_KEY"
    status, body = await hive.call(
        "GET", "/v1/workers/list", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    assert body["error"]["code"] == "INVALID_API_KEY"
    status, _ = await hive.call("GET", "/v1/health")
    assert status == 200
    auth = {"Authorization": "Bearer s3cret-token-for-tests-7b1e9d3f5a"}
    status, body = await hive.call(
        "POST",
        "/v1/workers/spawn",
        {"model_ref": hive.model_ref, "backend": "cpu", "device": 0, "model_path": ""},
        headers=auth,
    )
    assert status == 200, body
    # The unmodified worker sends no token, and still becomes ready through its secret URL.
    worker_id = body["worker_id"]
    with anyio.fail_after(20):
        while True:
            status, w = await hive.call("GET", f"/v1/workers/{worker_id}", headers=auth)
            if w["state"] == "idle":
                break
            await anyio.sleep(0.05)
    assert "s3cret-token-for-tests-7b1e9d3f5a" not in hive.output()


async def test_a_public_bind_without_a_token_is_refused(tmp_path: object) -> None:
    import subprocess

    from hive_harness import FAKE_WORKER, RBEE_HIVE, free_port

    port = free_port()
    result = subprocess.run(
        [
            str(RBEE_HIVE),
            "daemon",
            "--addr",
            f"0.0.0.0:{port}",
            "--worker-binary",
            str(FAKE_WORKER),
            "--state-dir",
            f"{tmp_path}/s",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "LLORCH_API_TOKEN"},
    )
    assert result.returncode != 0
    assert f"refusing to listen on 0.0.0.0:{port} without a token" in result.stderr


async def test_a_taken_address_fails_fast_with_a_clear_message(
    start_daemon: DaemonFactory,
) -> None:
    import subprocess

    from hive_harness import FAKE_WORKER, RBEE_HIVE

    hive = start_daemon()
    result = subprocess.run(
        [
            str(RBEE_HIVE),
            "daemon",
            "--addr",
            f"127.0.0.1:{hive.port}",
            "--worker-binary",
            str(FAKE_WORKER),
            "--state-dir",
            str(hive.tmp / "other"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "already in use" in result.stderr
    status, _ = await hive.call("GET", "/v1/health")  # the running hive is untouched
    assert status == 200
