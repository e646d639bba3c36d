"""A fresh install is told which engines can start workers: by detect and at daemon start."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rbee_hive_cli import main
from rbee_hive_cli._engines import log_engines
from rbee_hive_monitor import openai_engine, rbee_engine


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("RBEE_HIVE_WORKER_BINARY", "RBEE_HIVE_DEFAULT_ENGINE"):
        monkeypatch.delenv(name, raising=False)


def test_detect_lists_each_engine_as_usable_or_not_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-llm-worker-rbee"
    result = CliRunner().invoke(main, ["detect", "--json", "--worker-binary", str(missing)])
    assert result.exit_code == 0, result.output
    engines = {e["name"]: e for e in json.loads(result.output)["engines"]}
    assert set(engines) >= {"rbee", "openai"}
    rbee = engines["rbee"]
    assert (rbee["usable"], rbee["default"]) == (False, True)
    assert str(missing) in rbee["detail"]
    assert "rbee-hive[llama-cpp]" in rbee["fix"]
    assert engines["openai"]["default"] is False

    readable = CliRunner().invoke(main, ["detect", "--worker-binary", str(missing)])
    assert readable.exit_code == 0, readable.output
    assert "ENGINE" in readable.output
    assert "to use engine rbee:" in readable.output


def test_detect_sees_an_installed_worker_program(tmp_path: Path) -> None:
    worker = tmp_path / "llm-worker-rbee"
    worker.write_text("#!/bin/sh\nexit 0\n")
    worker.chmod(0o755)
    result = CliRunner().invoke(main, ["detect", "--json", "--worker-binary", str(worker)])
    assert result.exit_code == 0, result.output
    rbee = next(e for e in json.loads(result.output)["engines"] if e["name"] == "rbee")
    assert (rbee["usable"], rbee["fix"]) == (True, None)


def test_detect_names_a_broken_engine_table(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text('[engines.bad]\nargv = "llama-server -m x"\n')
    result = CliRunner().invoke(main, ["detect", "--config", str(config)])
    assert result.exit_code != 0
    assert "engines.bad" in result.output


def test_the_daemon_warns_when_the_default_engine_cannot_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engines = [rbee_engine(tmp_path / "absent"), openai_engine([sys.executable, "-c", "pass"])]
    with caplog.at_level(logging.INFO, logger="rbee_hive.daemon"):
        rows = log_engines(engines, "rbee")
    assert [r["usable"] for r in rows] == [False, True]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "default engine 'rbee' cannot start workers" in text
    assert str(tmp_path / "absent") in text
    assert "--worker-binary" in text
    assert "Usable engines: openai" in text


def test_no_warning_when_the_default_engine_can_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engines = [rbee_engine(tmp_path / "absent"), openai_engine([sys.executable, "-c", "pass"])]
    with caplog.at_level(logging.INFO, logger="rbee_hive.daemon"):
        log_engines(engines, "openai")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("engine rbee: not usable" in r.getMessage() for r in caplog.records)
