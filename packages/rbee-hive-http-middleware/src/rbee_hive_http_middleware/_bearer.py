"""Strict parsing of ``Authorization: Bearer <token>``, the same rules as the original peers.

* The header may appear once; its value is at most 8192 bytes.
* The scheme is exactly ``Bearer`` (case-sensitive: ``bearer``/``BEARER`` are refused, as the
  original queen, hive and worker refuse them), then exactly one space, then the token.
* No whitespace around it beyond what the ASGI server already stripped (HTTP/1.1 servers
  remove the optional whitespace around a header value; nothing else is trimmed).
* The token is an RFC 6750 ``b64token``: letters, digits, ``-._~+/``, then optional ``=``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

import attrs

#: Longest ``Authorization`` value looked at; longer ones are refused unread.
MAX_AUTHORIZATION_BYTES = 8192
_BEARER = re.compile(rb"Bearer ([A-Za-z0-9\-._~+/]+=*)")


class CredentialStatus(enum.Enum):
    """What a request's ``Authorization`` header amounts to."""

    MISSING = "missing"
    MALFORMED = "malformed"
    PRESENT = "present"


@attrs.frozen(repr=False)
class BearerCredential:
    """The parsed header: a status, the presented token bytes (only when PRESENT) and why."""

    status: CredentialStatus
    token: bytes = b""
    reason: str = ""

    def __repr__(self) -> str:  # the presented token may be a real secret: never show it
        return f"BearerCredential(status={self.status.value!r}, reason={self.reason!r})"


def parse_bearer(values: Sequence[bytes]) -> BearerCredential:
    """Parse every ``Authorization`` value of a request (ASGI gives them as raw bytes)."""
    if not values:
        return BearerCredential(CredentialStatus.MISSING, reason="no Authorization header")
    if len(values) > 1:
        return BearerCredential(
            CredentialStatus.MALFORMED, reason="Authorization header sent more than once"
        )
    value = values[0]
    if len(value) > MAX_AUTHORIZATION_BYTES:
        return BearerCredential(
            CredentialStatus.MALFORMED,
            reason=f"Authorization header longer than {MAX_AUTHORIZATION_BYTES} bytes",
        )
    match = _BEARER.fullmatch(value)
    if match is None:
        return BearerCredential(
            CredentialStatus.MALFORMED, reason="Authorization header is not 'Bearer <token>'"
        )
    return BearerCredential(CredentialStatus.PRESENT, token=match.group(1), reason="bearer token")
