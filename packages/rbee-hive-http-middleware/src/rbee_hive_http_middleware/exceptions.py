"""Errors raised by rbee_hive_http_middleware; each says when it is raised.

None of them ever carries a token or a secret in its message.
"""

from __future__ import annotations

from pathlib import Path


class MiddlewareError(Exception):
    """Base class of every error this package raises."""


class InvalidToken(MiddlewareError, ValueError):
    """Raised when a token value is empty, too long, or has characters a header can't carry."""


class TokenFileError(MiddlewareError):
    """Base class of the errors about the token file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class InsecureTokenFile(TokenFileError):
    """Raised by ``load_token_file`` when group or others have any access to the file."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            path,
            f"token file {str(path)!r} has mode {mode:04o}: group or others have access to it, "
            "so the token may already be known to other users; the mode must be 0600 or "
            f"stricter: run `chmod 600 {path}` (and rotate the token if the machine is shared)",
        )
        self.mode = mode


class InvalidTokenFile(TokenFileError):
    """Raised by ``load_token_file`` when the file is missing, unreadable or not one valid token."""


class TokenFileExists(TokenFileError, FileExistsError):
    """Raised by ``create_token_file`` when the path already exists; it never overwrites."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            f"token file {str(path)!r} already exists; refusing to overwrite it "
            "(delete it first to rotate the token, then restart the hive and its clients)",
        )


class AuditError(MiddlewareError):
    """Base class of the audit-log errors."""


class AuditDirectoryError(AuditError):
    """Raised when the audit directory cannot be created, secured or read at open/verify."""


class RequestBodyTooLarge(MiddlewareError):
    """Raised inside ``receive`` by ``BodyLimitMiddleware`` once a streamed body passes the cap.

    The middleware catches it and answers 413; an application only sees it if it reads the
    body itself, and should let it propagate.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes
