"""kill_workers_on_exit: a flag, a variable or a TOML key; refused where it cannot work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rbee_hive_cli import SettingError, load_settings


def env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path), **more}


def test_workers_outlive_the_daemon_by_default_so_they_can_be_adopted(tmp_path: Path) -> None:
    settings = load_settings({}, environ=env(tmp_path))
    assert settings.kill_workers_on_exit is False
    assert settings.sources["kill_workers_on_exit"] == "default"


@pytest.mark.parametrize(
    ("flags", "environ", "toml", "expected", "source"),
    [
        ({"kill_workers_on_exit": True}, {}, "", True, "flag"),
        ({}, {"RBEE_HIVE_KILL_WORKERS_ON_EXIT": "1"}, "", True, "RBEE_HIVE_KILL_WORKERS_ON_EXIT"),
        (
            {},
            {"RBEE_HIVE_KILL_WORKERS_ON_EXIT": "false"},
            "",
            False,
            "RBEE_HIVE_KILL_WORKERS_ON_EXIT",
        ),
        ({}, {}, "kill_workers_on_exit = true\n", True, "toml"),
    ],
)
def test_it_is_set_by_flag_environment_or_config(
    tmp_path: Path,
    flags: dict[str, bool],
    environ: dict[str, str],
    toml: str,
    expected: bool,
    source: str,
) -> None:
    config = tmp_path / "hive.toml"
    config.write_text(toml)
    settings = load_settings(flags, environ=env(tmp_path, **environ), config=config)
    assert settings.kill_workers_on_exit is expected
    assert settings.sources["kill_workers_on_exit"] == (str(config) if source == "toml" else source)


def test_a_value_that_is_not_a_boolean_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"kill_workers_on_exit.*expected true or false"):
        load_settings({}, environ=env(tmp_path, RBEE_HIVE_KILL_WORKERS_ON_EXIT="sometimes"))


def test_it_is_refused_off_linux_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(SettingError, match=r"kill_workers_on_exit.*needs Linux.*leave it off"):
        load_settings({"kill_workers_on_exit": True}, environ=env(tmp_path))
    assert load_settings({}, environ=env(tmp_path)).kill_workers_on_exit is False
