"""One error-code -> status table, and the Starlette handlers that answer with it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import rbee_hive_monitor
import rbee_hive_provisioner
from rbee_hive_http_server import ERROR_STATUS, status_for
from rbee_hive_http_server.app import EXCEPTION_HANDLERS, ApiError
from rbee_hive_monitor import LaunchFailed, SupervisorClosed, UnknownWorker
from rbee_hive_provisioner import AmbiguousModel, InsufficientDisk, ProvisionerError
from rbee_hive_resources import AdmissionRefused, Backend, DeviceRef, RefusalCode

pytestmark = pytest.mark.anyio

PACKAGES = Path(__file__).resolve().parents[2]


def _raising(exc: Exception) -> Callable[[Request], Response]:
    async def route(request: Request) -> Response:
        raise exc

    return route  # type: ignore[return-value]  # Starlette accepts async endpoints


async def _answer(exc: Exception) -> httpx.Response:
    app = Starlette(
        routes=[Route("/boom", _raising(exc), methods=["GET"])],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hive") as client:
        return await client.get("/boom")


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ApiError("MODEL_IN_USE", "stop them first"), 409, "MODEL_IN_USE"),
        (UnknownWorker("w-1"), 404, "WORKER_NOT_FOUND"),
        (SupervisorClosed(), 503, "SHUTTING_DOWN"),
        (InsufficientDisk("/m", 10 * 2**30, 2**30, 0), 507, "INSUFFICIENT_DISK"),
        (AmbiguousModel("pick one", ("a.gguf", "b.gguf")), 409, "AMBIGUOUS_MODEL"),
        (
            LaunchFailed("exited", code="WORKER_EXITED_EARLY", worker_id="w-1", exit_code=3),
            502,
            "WORKER_EXITED_EARLY",
        ),
        (ValueError("a bug"), 500, "INTERNAL_ERROR"),
    ],
)
async def test_a_domain_error_leaves_as_the_envelope_with_its_tables_status(
    exc: Exception, status: int, code: str
) -> None:
    response = await _answer(exc)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if code == "INTERNAL_ERROR":
        assert "a bug" not in response.text  # the traceback stays in the log


async def test_an_admission_refusal_answers_with_its_figures() -> None:
    gpu = DeviceRef(backend=Backend.CUDA, index=0, uuid="GPU-1234abcd", name="H200")
    refusal = AdmissionRefused(
        RefusalCode.INSUFFICIENT_VRAM,
        "needs 9 GiB, 4 GiB free",
        required_bytes=9 * 2**30,
        available_bytes=4 * 2**30,
        reserve_bytes=0,
        devices=[gpu],
    )
    response = await _answer(refusal)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "INSUFFICIENT_VRAM"
    assert (error["required_bytes"], error["available_bytes"]) == (9 * 2**30, 4 * 2**30)
    assert error["devices"] == [
        {"backend": "cuda", "index": 0, "uuid": "GPU-1234abcd", "name": "H200"}
    ]


async def test_a_launch_failure_carries_the_exit_code() -> None:
    exc = LaunchFailed("exited", code="WORKER_EXITED_EARLY", worker_id="w-1", exit_code=3)
    assert (await _answer(exc)).json()["error"]["exit_code"] == 3


def test_provisioner_errors_carry_a_code_and_no_http_status() -> None:
    errors = [
        cls
        for _, cls in inspect.getmembers(rbee_hive_provisioner, inspect.isclass)
        if issubclass(cls, ProvisionerError)
    ]
    assert len(errors) > 5
    for cls in errors:
        assert not hasattr(cls, "http_status"), f"{cls.__name__} still carries an HTTP status"
        assert cls.code in ERROR_STATUS, cls.code


_CODE_LITERAL = re.compile(r"""\bcode\s*(?::\s*str\s*)?=\s*["']([A-Z][A-Z0-9_]+)["']""")
_LAUNCH_CODES = re.compile(r"""["']((?:WORKER|ENGINE)_[A-Z_]+)["']""")


def _codes_in(package: str) -> set[str]:
    found: set[str] = set()
    for source in (PACKAGES / package / "src").rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        found.update(_CODE_LITERAL.findall(text))
        if package == "rbee-hive-monitor":  # launch failures pass their code as an argument
            found.update(_LAUNCH_CODES.findall(text))
    return found


def test_every_code_the_lower_rooms_raise_has_a_status() -> None:
    codes = _codes_in("rbee-hive-monitor") | _codes_in("rbee-hive-provisioner")
    codes |= {code.value for code in RefusalCode}
    for _, cls in inspect.getmembers(rbee_hive_monitor, inspect.isclass):
        code = getattr(cls, "code", None)
        if isinstance(code, str):
            codes.add(code)
    assert {"WORKER_EXITED_EARLY", "ENGINE_UNAVAILABLE"} <= codes  # the scan sees what it should
    missing = sorted(codes - set(ERROR_STATUS))
    assert not missing, f"add these codes to ERROR_STATUS in _wire.py: {missing}"


def test_every_status_in_the_table_is_an_error_status() -> None:
    assert all(400 <= status < 600 for status in ERROR_STATUS.values())
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", code) for code in ERROR_STATUS)
    assert status_for("SOMETHING_NEW") == 500
