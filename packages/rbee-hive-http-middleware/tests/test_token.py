from __future__ import annotations

import os
import secrets
import stat
import uuid
from pathlib import Path

import pytest

from rbee_hive_http_middleware import (
    MIN_TOKEN_CHARS,
    InsecureTokenFile,
    InvalidToken,
    InvalidTokenFile,
    Token,
    TokenFileExists,
    create_token_file,
    load_token_file,
    token_fingerprint,
    token_weakness,
)


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_fingerprint_is_first_six_hex_of_sha256_like_the_original() -> None:
    assert token_fingerprint("test") == "9f86d0"
    assert token_fingerprint(Token("test")) == "9f86d0"


def test_token_repr_and_str_never_show_the_secret() -> None:
    token = Token("very-secret-value-123")
    for shown in (repr(token), str(token), f"{token}", f"{token!r}", repr([token])):
        assert "very-secret-value-123" not in shown
        assert token.fingerprint in shown
    assert token.reveal() == "very-secret-value-123"
    assert token.identity == f"token:{token.fingerprint}"


@pytest.mark.parametrize("bad", ["", "with space", "tab\there", "nul\x00", "é", "a=b"])
def test_token_that_no_client_could_send_is_refused(bad: str) -> None:
    with pytest.raises(InvalidToken) as info:
        Token(bad)
    if bad:
        assert bad not in str(info.value)


def test_token_file_with_one_trailing_newline_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "token", b"abc-DEF_123\n")
    assert load_token_file(path) == "abc-DEF_123"
    path = _write(tmp_path / "token-crlf", b"abc-DEF_123\r\n")
    assert load_token_file(path) == "abc-DEF_123"
    assert Token.from_file(path).reveal() == "abc-DEF_123"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o666])
def test_token_file_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "token", b"abc-DEF_123\n", mode)
    with pytest.raises(InsecureTokenFile) as info:
        load_token_file(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert "abc-DEF_123" not in message


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"two\n\n", b"ctrl\x07char\n", b" leading-space\n", b"in side\n", b"\xff\xfe\n"],
)
def test_token_file_that_is_not_one_token_is_refused(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "token", content)
    with pytest.raises(InvalidTokenFile) as info:
        load_token_file(path)
    assert str(path) in str(info.value)


def test_missing_token_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidTokenFile, match="nope"):
        load_token_file(tmp_path / "nope")


def test_created_token_file_is_0600_and_loads(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask must not widen the file's mode
    try:
        path = create_token_file(tmp_path / "sub" / "token")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = load_token_file(path)
    assert len(token) >= 43
    Token(token)


def test_token_file_is_created_with_mode_0600_in_the_open_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_open = os.open

    def recording_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        seen.append(mode)
        assert flags & os.O_EXCL
        assert flags & os.O_CREAT
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", recording_open)
    create_token_file(tmp_path / "token")
    assert seen == [0o600]


def test_existing_token_file_is_never_overwritten(tmp_path: Path) -> None:
    path = _write(tmp_path / "token", b"keep-me\n")
    with pytest.raises(TokenFileExists):
        create_token_file(path)
    assert path.read_bytes() == b"keep-me\n"


def test_two_created_tokens_differ(tmp_path: Path) -> None:
    first = load_token_file(create_token_file(tmp_path / "a"))
    second = load_token_file(create_token_file(tmp_path / "b"))
    assert first != second


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("queen-tok", "is 9 characters long; at least 32"),
        ("x" * 31, "is 31 characters long"),
        ("ab" * 32, "uses only 2 different characters"),
        ("0123456" * 6, "uses only 7 different characters"),
    ],
)
def test_short_or_repetitive_tokens_are_weak_and_the_reason_never_shows_them(
    text: str, problem: str
) -> None:
    weakness = token_weakness(Token(text))
    assert weakness is not None
    assert problem in weakness
    assert text not in weakness


def test_generated_tokens_and_hex_or_uuid_tokens_are_strong() -> None:
    assert MIN_TOKEN_CHARS == 32
    for _ in range(200):
        assert token_weakness(Token.generate()) is None
        assert token_weakness(secrets.token_hex(16)) is None
        assert token_weakness(str(uuid.uuid4())) is None
    assert token_weakness("a" * 64) is not None  # long, but not random
