"""The adoption state file: atomic, private, and never a reason not to start."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rbee_hive_monitor._identity import ProcessIdentity
from rbee_hive_monitor._state_file import SCHEMA_VERSION, PersistedWorker, StateFile
from rbee_hive_monitor.exceptions import StateFileInUse


def worker(worker_id: str = "w1", port: int = 8081, *, ready: bool = True) -> PersistedWorker:
    return PersistedWorker(
        id=worker_id,
        model_ref="hf:org/repo:model.gguf",
        backend="cuda",
        device=1,
        engine="rbee",
        port=port,
        url=f"http://127.0.0.1:{port}",
        model_path="/models/model.gguf",
        env={"CUDA_VISIBLE_DEVICES": "GPU-1234"},
        ready=ready,
        process=ProcessIdentity(pid=4242, start_time=123456, boot_id="boot-a", pgid=4242, uid=1000),
        log_path=f"/state/workers/{worker_id}.log",
        callback_url=f"http://127.0.0.1:9200/v1/workers/ready/secret-{worker_id}",
        launch=2,
        restart_count=1,
        started_at="2026-12-02T21:00:00+00:00",
    )


def test_saved_workers_load_back_unchanged_from_a_private_file(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "workers.json")
    saved = (worker("w1", 8081), worker("w2", 8082, ready=False))
    state.save(saved)
    loaded = state.load()
    assert loaded.workers == saved
    assert loaded.problem is None
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600  # it holds callback secrets
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workers.json"]  # no temp file left
    document = json.loads(state.path.read_text())
    assert document["schema"] == SCHEMA_VERSION
    assert document["hive_pid"] == os.getpid()


def test_a_missing_file_means_no_workers_and_no_complaint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = StateFile(tmp_path / "workers.json").load()
    assert loaded.workers == ()
    assert loaded.problem is None
    assert not caplog.records


def test_a_failed_write_leaves_the_previous_document_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = StateFile(tmp_path / "workers.json")
    state.save([worker("w1")])

    def no_space(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError, match="No space"):
        state.save([worker("w1"), worker("w2", 8082)])
    monkeypatch.undo()
    assert [w.id for w in state.load().workers] == ["w1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workers.json"]


def test_a_temp_file_left_by_a_killed_writer_is_ignored_and_replaced(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "workers.json")
    state.save([worker("w1")])
    leftover = tmp_path / f".workers.json.{os.getpid()}.tmp"
    leftover.write_text('{"schema": 1, "workers": [{"half": ')  # killed mid-write
    assert [w.id for w in state.load().workers] == ["w1"]
    state.save([worker("w2", 8082)])
    assert [w.id for w in state.load().workers] == ["w2"]
    assert not leftover.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b'["a list"]', "'workers' list"),
        (b'{"schema": 99, "workers": []}', "schema 99"),
    ],
)
def test_an_unreadable_file_is_moved_aside_with_a_clear_line_and_start_up_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    state = StateFile(tmp_path / "workers.json")
    state.path.write_bytes(content)
    state.path.chmod(0o600)
    with caplog.at_level(logging.ERROR, logger="rbee_hive.monitor"):
        loaded = state.load()
    assert loaded.workers == ()
    assert loaded.problem is not None
    assert why in loaded.problem
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("workers.json.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes() == content  # kept for a post-mortem
    assert not state.path.exists()
    assert why in caplog.text
    assert str(aside[0]) in caplog.text
    state.save([worker("w1")])  # and the hive carries on writing its own
    assert [w.id for w in state.load().workers] == ["w1"]


def test_a_malformed_record_is_skipped_and_the_others_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = StateFile(tmp_path / "workers.json")
    state.save([worker("w1"), worker("w2", 8082)])
    document = json.loads(state.path.read_text())
    document["workers"][0]["port"] = "eighty"
    del document["workers"][1]["process"]["start_time"]
    document["workers"].append(worker("w3", 8083).to_json())
    state.path.write_text(json.dumps(document))
    with caplog.at_level(logging.ERROR, logger="rbee_hive.monitor"):
        loaded = state.load()
    assert [w.id for w in loaded.workers] == ["w3"]
    assert "'port' must be an integer" in caplog.text
    assert "missing field 'start_time'" in caplog.text
    assert state.path.exists()


def test_a_file_others_may_write_is_not_trusted_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = StateFile(tmp_path / "workers.json")
    state.save([worker("w1")])
    state.path.chmod(0o666)
    with caplog.at_level(logging.ERROR, logger="rbee_hive.monitor"):
        loaded = state.load()
    assert loaded.workers == ()
    assert "chmod 600" in caplog.text
    assert state.path.exists()  # not ours to move: someone may be looking at it


def test_the_callback_secret_is_not_in_the_repr(tmp_path: Path) -> None:
    assert "secret-w1" not in repr(worker("w1"))


def test_a_second_hive_on_the_same_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = StateFile(tmp_path / "workers.json")
    first.lock()
    try:
        with pytest.raises(
            StateFileInUse, match=rf"another running rbee-hive \(pid {os.getpid()}\)"
        ):
            StateFile(tmp_path / "workers.json").lock()
    finally:
        first.unlock()
    again = StateFile(tmp_path / "workers.json")
    again.lock()
    again.unlock()


def test_a_killed_hive_leaves_the_file_free_for_the_next(tmp_path: Path) -> None:
    code = (
        "import sys, time; from rbee_hive_monitor._state_file import StateFile; "
        "StateFile(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "workers.json")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(StateFileInUse, match=f"pid {holder.pid}"):
        StateFile(tmp_path / "workers.json").lock()
    holder.kill()
    holder.wait()
    holder.stdout.close()
    after = StateFile(tmp_path / "workers.json")
    after.lock()
    after.unlock()
