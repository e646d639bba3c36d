"""A worker adopted after a hive restart keeps reporting with the secret it was given."""

from __future__ import annotations

from rbee_hive_http_middleware import CallbackSecrets


def test_a_restored_secret_names_its_worker_again_and_the_issued_one_stops() -> None:
    before = CallbackSecrets()
    secret = before.issue("w1")
    after = CallbackSecrets()  # the restarted hive knows nothing
    assert after.worker_for(secret) is None
    assert after.restore("w1", secret) is True
    assert after.worker_for(secret) == "w1"
    assert after.worker_for_path(after.heartbeat_path(secret)) == "w1"
    fresh = after.issue("w1")  # a restart of the worker: the old secret stops working
    assert after.worker_for(secret) is None
    assert after.worker_for(fresh) == "w1"


def test_a_secret_is_never_restored_for_another_worker_or_in_a_bad_shape() -> None:
    secrets = CallbackSecrets()
    taken = secrets.issue("w1")
    assert secrets.restore("w2", taken) is False
    assert secrets.worker_for(taken) == "w1"
    assert secrets.restore("w2", "short") is False
    assert secrets.restore("w2", "x" * 40 + "/../") is False
    assert len(secrets) == 1
