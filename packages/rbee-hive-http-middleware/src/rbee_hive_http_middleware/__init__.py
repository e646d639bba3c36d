"""Pure ASGI middleware for rbee-hive: bearer auth, worker-callback secrets, lockout,
correlation ids, body-size limits, and the hash-chained audit log with its verifier.

Nothing here imports a web framework; wrap any ASGI app::

    app = CorrelationIdMiddleware(
        BearerAuthMiddleware(BodyLimitMiddleware(inner_app), token=token, audit=audit_log)
    )
"""

from rbee_hive_http_middleware._asgi import ASGIApp, Message, Receive, Scope, Send
from rbee_hive_http_middleware._audit_files import AuditFile, AuditFileOpener, open_audit_file
from rbee_hive_http_middleware._audit_log import HIVE_ACTOR, AuditLog
from rbee_hive_http_middleware._audit_record import (
    CRITICAL_EVENTS,
    GENESIS_HASH,
    AuditEvent,
    canonical_json,
    record_hash,
)
from rbee_hive_http_middleware._audit_verify import BrokenLink, VerifyReport, verify_audit_dir
from rbee_hive_http_middleware._auth import (
    AUTH_IDENTITY_KEY,
    CALLBACK_WORKER_ID_KEY,
    CLIENT_ADDRESS_KEY,
    DEFAULT_PUBLIC_PATHS,
    AuditSink,
    BearerAuthMiddleware,
    callback_worker_id,
)
from rbee_hive_http_middleware._bearer import (
    MAX_AUTHORIZATION_BYTES,
    BearerCredential,
    CredentialStatus,
    parse_bearer,
)
from rbee_hive_http_middleware._body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from rbee_hive_http_middleware._callbacks import (
    DEFAULT_CALLBACK_PREFIX,
    HEARTBEAT_SUFFIX,
    CallbackAuthenticator,
    CallbackSecrets,
)
from rbee_hive_http_middleware._client import TrustedNetworks, TrustedProxies, client_address
from rbee_hive_http_middleware._correlation import (
    CORRELATION_ID_HEADER,
    CORRELATION_ID_KEY,
    CorrelationIdFilter,
    CorrelationIdMiddleware,
    correlation_id,
    valid_correlation_id,
)
from rbee_hive_http_middleware._lockout import FailureTracker, LockoutPolicy
from rbee_hive_http_middleware._log_flood import LogFloodFilter
from rbee_hive_http_middleware._responses import error_body, send_json_error
from rbee_hive_http_middleware._token import (
    HOW_TO_GENERATE,
    MIN_TOKEN_CHARS,
    Token,
    create_token_file,
    load_token_file,
    token_fingerprint,
    token_weakness,
)
from rbee_hive_http_middleware.exceptions import (
    AuditDirectoryError,
    AuditError,
    InsecureTokenFile,
    InvalidToken,
    InvalidTokenFile,
    MiddlewareError,
    RequestBodyTooLarge,
    TokenFileError,
    TokenFileExists,
)

__version__ = "0.1.0"  # the release; scripts/release keeps it equal to pyproject.toml

__all__ = [
    "AUTH_IDENTITY_KEY",
    "CALLBACK_WORKER_ID_KEY",
    "CLIENT_ADDRESS_KEY",
    "CORRELATION_ID_HEADER",
    "CORRELATION_ID_KEY",
    "CRITICAL_EVENTS",
    "DEFAULT_CALLBACK_PREFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PUBLIC_PATHS",
    "GENESIS_HASH",
    "HEARTBEAT_SUFFIX",
    "HIVE_ACTOR",
    "HOW_TO_GENERATE",
    "MAX_AUTHORIZATION_BYTES",
    "MIN_TOKEN_CHARS",
    "ASGIApp",
    "AuditDirectoryError",
    "AuditError",
    "AuditEvent",
    "AuditFile",
    "AuditFileOpener",
    "AuditLog",
    "AuditSink",
    "BearerAuthMiddleware",
    "BearerCredential",
    "BodyLimitMiddleware",
    "BrokenLink",
    "CallbackAuthenticator",
    "CallbackSecrets",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "CredentialStatus",
    "FailureTracker",
    "InsecureTokenFile",
    "InvalidToken",
    "InvalidTokenFile",
    "LockoutPolicy",
    "LogFloodFilter",
    "Message",
    "MiddlewareError",
    "Receive",
    "RequestBodyTooLarge",
    "Scope",
    "Send",
    "Token",
    "TokenFileError",
    "TokenFileExists",
    "TrustedNetworks",
    "TrustedProxies",
    "VerifyReport",
    "__version__",
    "callback_worker_id",
    "canonical_json",
    "client_address",
    "correlation_id",
    "create_token_file",
    "error_body",
    "load_token_file",
    "open_audit_file",
    "parse_bearer",
    "record_hash",
    "send_json_error",
    "token_fingerprint",
    "token_weakness",
    "valid_correlation_id",
    "verify_audit_dir",
]
