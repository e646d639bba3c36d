"""Callback URLs of adopted workers: the next hive accepts the URL the last one issued."""

from __future__ import annotations

from rbee_hive_http_middleware import CallbackSecrets
from rbee_hive_http_server._callbacks import CallbackUrls


def test_a_url_issued_by_the_previous_hive_on_the_same_address_is_restored() -> None:
    url = CallbackUrls("http://127.0.0.1:9200").issue("w1")
    secrets = CallbackSecrets()
    restarted = CallbackUrls("http://127.0.0.1:9200/", secrets)
    assert restarted.restore("w1", url) is True
    secret = url.rsplit("/", 1)[1]
    assert secrets.worker_for(secret) == "w1"
    restarted.revoke("w1")
    assert secrets.worker_for(secret) is None


def test_a_url_for_another_address_is_not_restored() -> None:
    url = CallbackUrls("http://127.0.0.1:9200").issue("w1")
    secrets = CallbackSecrets()
    assert CallbackUrls("http://127.0.0.1:9300", secrets).restore("w1", url) is False
    assert len(secrets) == 0
