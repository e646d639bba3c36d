"""The API token: a value type that never shows its secret, and the 0600 token file."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

import attrs

from rbee_hive_http_middleware.exceptions import (
    InsecureTokenFile,
    InvalidToken,
    InvalidTokenFile,
    TokenFileError,
    TokenFileExists,
)

#: Longest token accepted; the whole ``Authorization`` header is capped at 8 KiB.
MAX_TOKEN_CHARS = 4096
#: RFC 6750 ``b64token``: the only characters a bearer token may hold.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: The shortest token the daemon starts with: 32 random characters of base64 hold 192 bits,
#: so guessing stays infeasible even though a valid token is never refused by the lockout.
MIN_TOKEN_CHARS = 32
#: Fewer distinct characters than this cannot be a random token of MIN_TOKEN_CHARS or more.
MIN_DISTINCT_TOKEN_CHARS = 8
#: How to make a good API token, for error messages.
HOW_TO_GENERATE = (
    "generate one with `rbee-hive token create` or "
    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)
_MAX_FILE_BYTES = 64 * 1024


def token_fingerprint(token: str | Token) -> str:
    """The first 6 hex digits of SHA-256 of the token: safe to log, identifies the token."""
    if isinstance(token, Token):
        return token.fingerprint
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:6]


def token_weakness(token: str | Token) -> str | None:
    """Why ``token`` is too weak to guard a hive, or None when it is long and varied enough.

    At least ``MIN_TOKEN_CHARS`` characters, of which at least ``MIN_DISTINCT_TOKEN_CHARS``
    differ (``aaaa...`` is long but not random). The message never contains the token.
    """
    text = token.reveal() if isinstance(token, Token) else token
    if len(text) < MIN_TOKEN_CHARS:
        return (
            f"is {len(text)} characters long; at least {MIN_TOKEN_CHARS} random characters "
            "are required"
        )
    distinct = len(set(text))
    if distinct < MIN_DISTINCT_TOKEN_CHARS:
        return (
            f"uses only {distinct} different characters, so it is not random (a random token "
            f"of {MIN_TOKEN_CHARS} characters has about 25)"
        )
    return None


def _check_token_text(value: str, what: str) -> None:
    """Raise ``InvalidToken`` naming ``what`` (never the value) when ``value`` can't be a token."""
    if not value:
        raise InvalidToken(f"{what} is empty; a bearer token needs at least one character")
    if len(value) > MAX_TOKEN_CHARS:
        raise InvalidToken(
            f"{what} is {len(value)} characters long; at most {MAX_TOKEN_CHARS} are accepted"
        )
    bad = next((i for i, ch in enumerate(value) if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        raise InvalidToken(f"{what} contains a control character at position {bad}")
    if B64TOKEN.fullmatch(value) is None:
        raise InvalidToken(
            f"{what} contains characters other than letters, digits and -._~+/ (with '=' "
            "allowed only at the end), so no client could send it in 'Authorization: Bearer'; "
            "generate one with `rbee-hive token create` or python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'"
        )


@attrs.frozen(repr=False, eq=False)
class Token:
    """An API token. ``repr``/``str`` show only its fingerprint; ``reveal()`` gives the secret."""

    _secret: str = attrs.field(alias="secret")
    _fingerprint: str = attrs.field(init=False)

    @_secret.validator
    def _check(self, _attribute: object, value: str) -> None:
        _check_token_text(value, "the API token")

    @_fingerprint.default
    def _compute_fingerprint(self) -> str:
        return hashlib.sha256(self._secret.encode("utf-8")).hexdigest()[:6]

    @classmethod
    def generate(cls) -> Token:
        """A new random token (256 bits, URL-safe base64)."""
        return cls(secrets.token_urlsafe(32))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Token:
        """Load the token from a 0600 file (see ``load_token_file``)."""
        return cls(load_token_file(path))

    @property
    def fingerprint(self) -> str:
        """First 6 hex digits of SHA-256 of the token."""
        return self._fingerprint

    @property
    def identity(self) -> str:
        """``token:<fingerprint>``, the actor name used in logs and audit records."""
        return f"token:{self._fingerprint}"

    def matches(self, candidate: bytes) -> bool:
        """Constant-time comparison of ``candidate`` with the token's bytes."""
        return hmac.compare_digest(self._secret.encode("ascii"), candidate)

    def reveal(self) -> str:
        """The secret itself, for sending it to a peer; never log the result."""
        return self._secret

    def __repr__(self) -> str:
        return f"Token(fingerprint={self._fingerprint!r})"

    def __str__(self) -> str:
        return self.identity


def load_token_file(path: str | os.PathLike[str]) -> str:
    """Read an API token from a file that only its owner may read (mode 0600 or stricter).

    Exactly one trailing newline (``\\n`` or ``\\r\\n``) is removed; anything else that is not
    a valid bearer token (empty, control characters, spaces) is refused.
    """
    file = Path(path)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise InvalidTokenFile(
            file, f"cannot open token file {str(file)!r}: {err.strerror}"
        ) from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidTokenFile(file, f"token file {str(file)!r} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise InsecureTokenFile(file, mode)
        data = os.read(fd, _MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InvalidTokenFile(
            file, f"cannot read token file {str(file)!r}: {err.strerror}"
        ) from err
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE_BYTES:
        raise InvalidTokenFile(file, f"token file {str(file)!r} is too large to be a token")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise InvalidTokenFile(
            file, f"token file {str(file)!r} holds non-ASCII bytes; a bearer token is ASCII"
        ) from err
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    try:
        _check_token_text(text, f"the token in {str(file)!r}")
    except InvalidToken as err:
        raise InvalidTokenFile(file, str(err)) from err
    return text


def create_token_file(path: str | os.PathLike[str]) -> Path:
    """Write a new random token to ``path``, created 0600 with ``O_EXCL`` (never overwrites).

    The parent folder is created 0700 when missing. The file is never readable by anyone
    else, not even for an instant, because its mode is set by the ``open`` call itself.
    """
    file = Path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(
            file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError as err:
        raise TokenFileExists(file) from err
    except OSError as err:
        raise TokenFileError(
            file, f"cannot create token file {str(file)!r}: {err.strerror}"
        ) from err
    data = (secrets.token_urlsafe(32) + "\n").encode("ascii")
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits; never added any
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as err:
        os.close(fd)
        file.unlink(missing_ok=True)
        raise TokenFileError(
            file, f"cannot write token file {str(file)!r}: {err.strerror}"
        ) from err
    os.close(fd)
    return file
