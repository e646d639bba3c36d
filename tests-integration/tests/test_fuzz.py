"""An OpenAPI-driven fuzzer (schemathesis) against a live daemon with a fixture worker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hive_harness import DaemonFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


async def test_a_thousand_generated_requests_find_no_5xx_and_no_schema_break(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    hive = start_daemon()
    _, body = await hive.spawn()
    await hive.wait_for(body["worker_id"], lambda w: w["state"] == "idle", what="idle")
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{hive.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "50",
            "--seed",
            "20261127",
            "--generation-database",
            "none",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    match = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert match is not None, summary
    generated, passed = int(match.group(1)), int(match.group(2))
    assert generated >= 1000, summary
    assert passed == generated, summary
    assert "Internal Server Error" not in hive.output()
    status, _ = await hive.call("GET", "/v1/health")
    assert status == 200
