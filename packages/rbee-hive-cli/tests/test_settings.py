from __future__ import annotations

from pathlib import Path

import pytest

from rbee_hive_cli import SettingError, load_settings
from rbee_hive_cli._settings import parse_address, parse_bytes


def test_defaults_when_nothing_is_given(tmp_path: Path) -> None:
    settings = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert str(settings.addr) == "127.0.0.1:9200"
    assert settings.port_range == (8081, 9000)
    assert settings.shutdown_deadline == 30.0
    assert settings.restart_policy == "on-failure"
    assert settings.worker_host == "127.0.0.1"
    assert settings.sources["addr"] == "default"


def test_flags_beat_environment_beat_config_beat_defaults(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text('addr = "127.0.0.1:7000"\nprobe_interval = 7\nstop_timeout = 4\n')
    env = {"RBEE_HIVE_ADDR": "127.0.0.1:8000", "RBEE_HIVE_PROBE_INTERVAL": "8"}
    settings = load_settings({"addr": "127.0.0.1:9000"}, environ=env, config=config)
    assert str(settings.addr) == "127.0.0.1:9000"
    assert settings.sources["addr"] == "flag"
    assert settings.probe_interval == 8.0
    assert settings.sources["probe_interval"] == "RBEE_HIVE_PROBE_INTERVAL"
    assert settings.stop_timeout == 4.0
    assert settings.sources["stop_timeout"] == str(config)
    assert settings.loading_timeout == 600.0


def test_a_bad_value_names_the_setting_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(
        SettingError,
        match=r"'probe_interval' from environment variable RBEE_HIVE_PROBE_INTERVAL: .*'soon'",
    ):
        load_settings(
            {}, environ={"RBEE_HIVE_PROBE_INTERVAL": "soon", "XDG_CONFIG_HOME": str(tmp_path)}
        )


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="does not exist"):
        load_settings({}, environ={}, config=tmp_path / "nope.toml")


def test_a_typo_in_the_config_file_is_caught(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text("probe_intervall = 5\n")
    with pytest.raises(SettingError, match=r"unknown setting.*probe_intervall"):
        load_settings({}, environ={}, config=config)


def test_engines_come_from_config_tables(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text('[engines.llama-server]\nargv = ["llama-server", "-m", "{model_path}"]\n')
    settings = load_settings({}, environ={}, config=config)
    assert settings.engines["llama-server"]["argv"][0] == "llama-server"


def test_peer_variables_keep_their_names(tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path),
        "LLORCH_API_TOKEN": "s3cr3t-peer-token",
        "QUEEN_CALLBACK_URL": "http://127.0.0.1:8080/",
        "RBEE_WORKER_HOST": "10.1.2.3",
    }
    settings = load_settings({}, environ=env)
    assert settings.token_text == "s3cr3t-peer-token"
    assert settings.queen_callback_url == "http://127.0.0.1:8080"
    assert settings.worker_host == "10.1.2.3"
    assert "s3cr3t-peer-token" not in repr(settings)


def test_probe_timeout_longer_than_the_interval_is_refused(tmp_path: Path) -> None:
    env = {
        "RBEE_HIVE_PROBE_INTERVAL": "1",
        "RBEE_HIVE_PROBE_TIMEOUT": "2",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    with pytest.raises(SettingError, match="probe_timeout"):
        load_settings({}, environ=env)


@pytest.mark.parametrize(
    ("text", "host", "loopback"),
    [
        ("127.0.0.1:9200", "127.0.0.1", True),
        ("0.0.0.0:8080", "0.0.0.0", False),
        ("[::1]:9200", "::1", True),
        ("localhost:1", "localhost", True),
    ],
)
def test_addresses(text: str, host: str, loopback: bool) -> None:
    addr = parse_address(text)
    assert addr.host == host
    assert addr.is_loopback is loopback


@pytest.mark.parametrize("text", ["9200", "host:", "a b:1", "1.2.3.4:70000", "x;rm:1"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|port"):
        parse_address(text)


def test_sizes_take_units() -> None:
    assert parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes(0) == 0
    with pytest.raises(ValueError, match="512MiB"):
        parse_bytes("lots")
