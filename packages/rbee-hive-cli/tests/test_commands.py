from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import rbee_hive_cli
from rbee_hive_cli import main
from rbee_hive_cli._daemon import callback_base, check_bind_policy
from rbee_hive_cli._settings import parse_address
from rbee_hive_cli.exceptions import DaemonStartError
from rbee_hive_http_middleware import AuditLog, Token


def test_help_lists_the_commands_users_and_rbee_keeper_need() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("daemon", "workers", "worker", "models", "status", "detect", "token", "audit"):
        assert command in result.output


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "rbee-hive, version" in result.output


def test_a_public_bind_without_a_token_is_refused() -> None:
    with pytest.raises(DaemonStartError, match=r"refusing to listen on 0\.0\.0\.0:8080"):
        check_bind_policy(parse_address("0.0.0.0:8080"), None)


def test_loopback_without_a_token_is_open_and_says_so() -> None:
    assert "OPEN" in check_bind_policy(parse_address("127.0.0.1:9200"), None)


def test_with_a_token_any_address_is_allowed_and_the_token_not_shown() -> None:
    line = check_bind_policy(parse_address("0.0.0.0:8080"), Token("abcdef123456"))
    assert "abcdef123456" not in line


def test_workers_reach_the_hive_on_loopback_when_it_listens_everywhere() -> None:
    assert callback_base(parse_address("0.0.0.0:8080")) == "http://127.0.0.1:8080"
    assert callback_base(parse_address("10.0.0.2:9200")) == "http://10.0.0.2:9200"


def test_token_create_writes_a_private_file(tmp_path: Path) -> None:
    target = tmp_path / "t" / "hive.token"
    result = CliRunner().invoke(main, ["token", "create", str(target)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert str(target) in result.output
    assert target.read_text().strip() not in result.output
    again = CliRunner().invoke(main, ["token", "create", str(target)])
    assert again.exit_code != 0


def test_audit_verify_reports_intact_and_then_the_broken_line(tmp_path: Path) -> None:
    audit_dir = tmp_path / "audit"
    with AuditLog(audit_dir) as log:
        for n in range(3):
            log.record("worker_spawn", outcome="accepted", details={"n": n})
    ok = CliRunner().invoke(main, ["audit", "verify", str(audit_dir)])
    assert ok.exit_code == 0, ok.output
    assert "intact: 3 records" in ok.output
    (day,) = audit_dir.glob("*.jsonl")
    lines = day.read_text().splitlines()
    lines[1] = lines[1].replace('"n":1', '"n":7')
    day.write_text("\n".join(lines) + "\n")
    bad = CliRunner().invoke(main, ["audit", "verify", str(audit_dir)])
    assert bad.exit_code != 0
    assert ":2" in bad.output


def test_client_commands_name_the_address_they_tried() -> None:
    result = CliRunner().invoke(main, ["workers", "list", "--addr", "127.0.0.1:1"])
    assert result.exit_code != 0
    assert "127.0.0.1:1" in result.output


def test_detect_works_without_a_gpu() -> None:
    result = CliRunner().invoke(main, ["detect", "--json"])
    assert result.exit_code == 0, result.output
    assert '"cpu"' in result.output
    readable = CliRunner().invoke(main, ["detect"])
    assert readable.exit_code == 0, readable.output
    assert "cpu" in readable.output
    assert "GPUs: none" in readable.output


def test_public_api_matches_all() -> None:
    exported = {n for n in dir(rbee_hive_cli) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_cli.__all__) <= exported
    assert exported - set(rbee_hive_cli.__all__) <= {"exceptions"}
