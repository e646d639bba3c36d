from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rbee_hive_http_middleware import (
    AuditLog,
    BearerAuthMiddleware,
    CorrelationIdMiddleware,
    Token,
    verify_audit_dir,
)

if TYPE_CHECKING:
    from conftest import AsgiCall, InnerApp

pytestmark = pytest.mark.anyio
Headers = list[tuple[str | bytes, str | bytes]]


async def test_token_never_appears_in_logs_or_audit_after_many_requests(
    asgi: AsgiCall,
    inner: InnerApp,
    token: Token,
    auth_headers: Headers,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = AuditLog(tmp_path / "audit")
    app = CorrelationIdMiddleware(BearerAuthMiddleware(inner, token=token, audit=audit))
    # Wrong tokens that share a long prefix with the real one must not leak either.
    wrong = [f"{token.reveal()[:-4]}{i:04d}" for i in range(100)]
    with caplog.at_level(logging.DEBUG):
        for i in range(100):
            assert (await asgi(app, headers=auth_headers, client=("10.0.0.1", i))).status == 200
            bad = [("authorization", f"Bearer {wrong[i]}")]
            assert (await asgi(app, headers=bad, client=(f"10.1.0.{i}", i))).status == 401
    audit.close()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    written = "".join(path.read_text("utf-8") for path in (tmp_path / "audit").iterdir())
    for text in (logged, written):
        assert token.reveal() not in text
        assert not any(guess in text for guess in wrong)
        assert token.fingerprint in text
    assert "10.1.0.99" in written  # the real client address, not 0.0.0.0
    report = verify_audit_dir(tmp_path / "audit")
    assert (report.intact, report.records) == (True, 200)


async def test_audit_failure_records_name_the_presented_fingerprint(
    asgi: AsgiCall, inner: InnerApp, token: Token, tmp_path: Path
) -> None:
    audit = AuditLog(tmp_path)
    app = BearerAuthMiddleware(inner, token=token, audit=audit)
    await asgi(app, headers=[("authorization", "Bearer test")], client=("192.0.2.5", 1))
    await asgi(app, client=("192.0.2.6", 1))
    audit.close()
    text = "".join(path.read_text("utf-8") for path in tmp_path.iterdir())
    assert '"actor":"token:9f86d0"' in text
    assert '"client":"192.0.2.5"' in text
    assert '"reason":"no Authorization header"' in text
    assert '"client":"192.0.2.6"' in text
