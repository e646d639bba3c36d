from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import rbee_hive_http_server
from rbee_hive_http_server import build_openapi
from rbee_hive_http_server._app import ROUTES

if TYPE_CHECKING:
    from conftest import Hive

pytestmark = pytest.mark.anyio

INJECTIONS = [
    "hf:org/repo\nx",
    "hf:org/repo\x1b[31m",
    "hf:org/repo\x00",
    "hf:org/repo;rm -rf /",
    "hf:org/repo|cat",
    "hf:org/`id`",
    "hf:org/$(id)",
    "file:/tmp/../etc/passwd",
    "hf:ørg/repö",
    "hf:<script>alert(1)</script>/x",
    "hf:org/repo'; DROP TABLE models;--",
]


async def test_health_answers_on_both_paths(hive: Hive) -> None:
    for path in ("/v1/health", "/health"):
        response = await hive.client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "alive", "version": "9.9.9", "api_version": "v1"}


async def test_spawn_accepts_the_queens_exact_body(hive: Hive) -> None:
    response = await hive.spawn()
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"worker_id", "url", "state"}
    assert body["state"] == "loading"
    assert body["worker_id"].startswith("worker-")


async def test_the_ready_callback_at_the_secret_url_makes_the_worker_idle(hive: Hive) -> None:
    body = (await hive.spawn()).json()
    worker_id = body["worker_id"]
    secret = hive.secrets.issue(worker_id)  # what the worker got, re-issued for the test
    port = body["url"].rsplit(":", 1)[1]
    ready = {
        "worker_id": worker_id,
        "url": f"http://localhost:{port}",
        "model_ref": hive.model_ref,
        "backend": "cpu",
        "device": 0,
    }
    response = await hive.client.post(f"/v1/workers/ready/{secret}", json=ready)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Worker registered as ready"}
    shown = (await hive.client.get(f"/v1/workers/{worker_id}")).json()
    assert shown["state"] == "idle"


async def _ready(hive: Hive) -> tuple[str, str]:
    """Spawn a worker and play its ready callback; its id and callback secret."""
    body = (await hive.spawn()).json()
    worker_id = body["worker_id"]
    secret = hive.secrets.issue(worker_id)
    ready = {
        "worker_id": worker_id,
        "url": body["url"],
        "model_ref": hive.model_ref,
        "backend": "cpu",
        "device": 0,
    }
    response = await hive.client.post(f"/v1/workers/ready/{secret}", json=ready)
    assert response.status_code == 200, response.text
    return worker_id, secret


async def test_a_heartbeat_that_says_busy_makes_the_worker_busy(heartbeat_hive: Hive) -> None:
    hive = heartbeat_hive
    worker_id, secret = await _ready(hive)
    states = []
    for state in ("busy", "idle"):
        beat = {"worker_id": worker_id, "health_status": "healthy", "state": state}
        response = await hive.client.post(f"/v1/workers/ready/{secret}/v1/heartbeat", json=beat)
        assert response.status_code == 200, response.text
        states.append((await hive.client.get(f"/v1/workers/{worker_id}")).json()["state"])
    assert states == ["busy", "idle"]


async def test_the_original_heartbeat_without_a_state_is_accepted_and_changes_no_state(
    heartbeat_hive: Hive,
) -> None:
    hive = heartbeat_hive
    worker_id, secret = await _ready(hive)
    beat = {
        "worker_id": worker_id,
        "timestamp": "2025-10-19T09:11:04+00:00",
        "health_status": "healthy",
    }
    response = await hive.client.post(f"/v1/workers/ready/{secret}/v1/heartbeat", json=beat)
    assert response.status_code == 200, response.text
    shown = (await hive.client.get(f"/v1/workers/{worker_id}")).json()
    assert shown["state"] == "idle"
    assert shown["last_heartbeat"] is not None


async def test_a_heartbeat_state_is_ignored_for_an_engine_that_reports_no_activity(
    hive: Hive,
) -> None:
    worker_id, secret = await _ready(hive)
    beat = {"worker_id": worker_id, "health_status": "healthy", "state": "busy"}
    response = await hive.client.post(f"/v1/workers/ready/{secret}/v1/heartbeat", json=beat)
    assert response.status_code == 200, response.text
    assert (await hive.client.get(f"/v1/workers/{worker_id}")).json()["state"] == "idle"


async def test_a_heartbeat_with_an_unknown_state_is_refused(heartbeat_hive: Hive) -> None:
    hive = heartbeat_hive
    worker_id, secret = await _ready(hive)
    beat = {"worker_id": worker_id, "health_status": "healthy", "state": "sleeping"}
    response = await hive.client.post(f"/v1/workers/ready/{secret}/v1/heartbeat", json=beat)
    assert response.status_code in (400, 422), response.text


async def test_a_callback_for_another_worker_changes_nothing(hive: Hive) -> None:
    first = (await hive.spawn()).json()["worker_id"]
    second = (await hive.spawn()).json()["worker_id"]
    secret_of_first = hive.secrets.issue(first)
    ready = {
        "worker_id": second,
        "url": "http://localhost:1",
        "model_ref": hive.model_ref,
        "backend": "cpu",
        "device": 0,
    }
    response = await hive.client.post(f"/v1/workers/ready/{secret_of_first}", json=ready)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CALLBACK_WORKER_MISMATCH"
    assert hive.registry.require(second).state.value == "loading"


async def test_errors_use_the_envelope(hive: Hive) -> None:
    response = await hive.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    response = await hive.client.put("/v1/workers/list")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_body_that_is_not_json_is_415_or_400(hive: Hive) -> None:
    response = await hive.client.post("/v1/workers/spawn", content=b"model_ref=x")
    assert response.status_code == 415
    response = await hive.client.post(
        "/v1/workers/spawn", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_JSON"


async def test_a_missing_or_wrong_field_is_422_naming_it(hive: Hive) -> None:
    response = await hive.client.post(
        "/v1/workers/spawn", json={"model_ref": hive.model_ref, "backend": "cpu"}
    )
    assert response.status_code == 422
    assert "device" in response.json()["error"]["fields"]
    response = await hive.spawn(device=-1)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == ["device"]
    response = await hive.spawn(backend="cpu; rm -rf /")
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == ["backend"]
    response = await hive.spawn(engine="nonesuch")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "UNKNOWN_ENGINE"


@pytest.mark.parametrize("model_ref", INJECTIONS)
async def test_injections_in_the_model_reference_start_nothing(hive: Hive, model_ref: str) -> None:
    response = await hive.spawn(model_ref=model_ref)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    assert len(hive.registry) == 0


async def test_a_body_over_64_kib_is_413(hive: Hive) -> None:
    response = await hive.spawn(model_path="x" * 70_000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_delete_stops_and_forgets_the_worker(hive: Hive) -> None:
    worker_id = (await hive.spawn()).json()["worker_id"]
    response = await hive.client.delete(f"/v1/workers/{worker_id}")
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] in ("graceful", "forced")
    assert (await hive.client.get(f"/v1/workers/{worker_id}")).status_code == 404
    response = await hive.client.delete(f"/v1/workers/{worker_id}")
    assert response.status_code == 404


async def test_the_list_keeps_the_original_shape(hive: Hive) -> None:
    await hive.spawn()
    body = (await hive.client.get("/v1/workers/list")).json()
    assert list(body) == ["workers"]
    assert body["workers"][0]["state"] == "loading"
    assert body["workers"][0]["slots_total"] == 1


async def test_with_a_token_only_public_routes_are_open(guarded_hive: Hive) -> None:
    client = guarded_hive.client
    assert (await client.get("/v1/workers/list")).status_code == 200
    bare = {"Authorization": ""}
    response = await client.get("/v1/workers/list", headers=bare)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "MISSING_API_KEY"
    response = await client.get("/v1/workers/list", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"
    assert (await client.get("/v1/health", headers=bare)).status_code == 200
    assert (await client.get("/openapi.json", headers=bare)).status_code == 200


async def test_the_openapi_document_covers_every_route(hive: Hive) -> None:
    document = (await hive.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    for route in ROUTES:
        path = getattr(route, "path", None)
        assert path in document["paths"], path
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                assert method.lower() in document["paths"][path], (method, path)
    assert build_openapi("1")["info"]["version"] == "1"


def test_public_api_matches_all() -> None:
    exported = {n for n in dir(rbee_hive_http_server) if not n.startswith("_")} | {"__version__"}
    assert set(rbee_hive_http_server.__all__) <= exported
    assert exported - set(rbee_hive_http_server.__all__) <= {"exceptions", "app"}  # modules
