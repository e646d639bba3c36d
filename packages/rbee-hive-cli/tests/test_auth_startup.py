"""Start-up checks of authentication: token strength, trusted networks, the bind policy."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from rbee_hive_cli import SettingError, load_settings, main
from rbee_hive_cli._daemon import check_bind_policy, effective_trusted_networks, resolve_token
from rbee_hive_cli._settings import parse_address
from rbee_hive_cli.exceptions import DaemonStartError
from rbee_hive_http_middleware import Token

STRONG = secrets.token_urlsafe(32)


# ---------------------------------------------------------------- token strength


@pytest.mark.parametrize("weak", ["queen-tok", "s3cret-token-for-tests", "a" * 40])
def test_a_weak_token_in_the_environment_stops_start_up_and_says_how_to_make_one(
    tmp_path: Path, weak: str
) -> None:
    settings = load_settings(
        {}, environ={"XDG_CONFIG_HOME": str(tmp_path), "LLORCH_API_TOKEN": weak}
    )
    with pytest.raises(DaemonStartError) as info:
        resolve_token(settings)
    message = str(info.value)
    assert "LLORCH_API_TOKEN" in message
    assert "secrets.token_urlsafe(32)" in message
    assert "rbee-hive token create" in message
    assert weak not in message


def test_a_weak_token_file_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    file = tmp_path / "hive.token"
    file.write_text("short-token\n")
    os.chmod(file, 0o600)
    settings = load_settings({"token_file": str(file)}, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    with pytest.raises(DaemonStartError, match=r"hive\.token is 11 characters long"):
        resolve_token(settings)


def test_a_generated_token_starts(tmp_path: Path) -> None:
    settings = load_settings(
        {}, environ={"XDG_CONFIG_HOME": str(tmp_path), "LLORCH_API_TOKEN": STRONG}
    )
    token = resolve_token(settings)
    assert token is not None
    assert token.reveal() == STRONG


def test_the_daemon_command_refuses_a_weak_token_before_binding(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["daemon", "--addr", "127.0.0.1:1", "--state-dir", str(tmp_path / "state")],
        env={"LLORCH_API_TOKEN": "queen-tok", "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "at least 32" in result.output


# ---------------------------------------------------------------- trusted networks


def test_trusted_networks_come_from_the_config_file_as_a_list(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text('trusted_networks = ["10.0.0.0/8", "fd00::/8", "192.168.1.7"]\n')
    settings = load_settings({}, environ={}, config=config)
    assert settings.trusted_networks == ("10.0.0.0/8", "fd00::/8", "192.168.1.7/32")


def test_trusted_networks_come_from_the_environment_and_the_flag_comma_separated(
    tmp_path: Path,
) -> None:
    env = {"RBEE_HIVE_TRUSTED_NETWORKS": "10.0.0.0/8, 172.16.0.0/12"}
    from_env = load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path), **env})
    assert from_env.trusted_networks == ("10.0.0.0/8", "172.16.0.0/12")
    from_flag = load_settings(
        {"trusted_networks": "192.168.0.0/16"}, environ={"XDG_CONFIG_HOME": str(tmp_path), **env}
    )
    assert from_flag.trusted_networks == ("192.168.0.0/16",)
    assert load_settings({}, environ={"XDG_CONFIG_HOME": str(tmp_path)}).trusted_networks == ()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('trusted_networks = ["0.0.0.0/0"]', "admits every address"),
        ('trusted_networks = ["::/0"]', "admits every address"),
        ('trusted_networks = ["10.0.0.1/8"]', "did you mean 10.0.0.0/8"),
        ('trusted_networks = ["ten-dot-net"]', "not a network in CIDR form"),
        ('trusted_networks = "10.0.0.0/8"', None),  # a plain string is accepted too
        ("trusted_networks = [10]", "expected a list of networks"),
    ],
)
def test_a_bad_trusted_network_stops_start_up_naming_the_setting(
    tmp_path: Path, toml: str, message: str | None
) -> None:
    config = tmp_path / "hive.toml"
    config.write_text(toml + "\n")
    if message is None:
        assert load_settings({}, environ={}, config=config).trusted_networks == ("10.0.0.0/8",)
        return
    with pytest.raises(SettingError, match=r"setting 'trusted_networks' from config file") as info:
        load_settings({}, environ={}, config=config)
    assert message in str(info.value)


def test_the_trusted_networks_flag_is_offered_by_the_daemon_command() -> None:
    result = CliRunner().invoke(main, ["daemon", "--help"])
    assert "--trusted-networks" in result.output


# ---------------------------------------------------------------- the bind policy


def test_a_public_bind_without_token_or_trusted_networks_is_refused_naming_both_fixes() -> None:
    with pytest.raises(DaemonStartError) as info:
        check_bind_policy(parse_address("0.0.0.0:8080"), None, ())
    message = str(info.value)
    assert "--token-file" in message
    assert "trusted_networks" in message


def test_a_public_bind_with_trusted_networks_starts_and_says_who_gets_in() -> None:
    line = check_bind_policy(parse_address("0.0.0.0:8080"), None, ("10.0.0.0/8",))
    assert "NO TOKEN" in line
    assert "10.0.0.0/8" in line


def test_without_a_token_this_machine_is_trusted_too_but_not_with_one() -> None:
    without = effective_trusted_networks(None, ("10.0.0.0/8",))
    assert without.network_of("127.0.0.1") == ipaddress.ip_network("127.0.0.0/8")
    assert without.network_of("::1") is not None
    assert without.network_of("10.2.3.4") is not None
    with_token = effective_trusted_networks(Token(STRONG), ("10.0.0.0/8",))
    assert with_token.network_of("127.0.0.1") is None
    assert not effective_trusted_networks(None, ())
