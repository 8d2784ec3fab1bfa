"""``/healthz`` and ``/readyz`` over HTTP: the process answers; readiness names each check's state, nothing more."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from likha_realtime import health

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "likha_realtime.layers.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:9/0", "socket_connect_timeout": 1}]},
    }
}


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "probe", health.Probe())


def test_healthz_answers_while_the_process_runs() -> None:
    response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_ok_when_the_database_and_the_channel_layer_answer() -> None:
    response = Client().get("/readyz")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}},
    )


def test_readyz_is_503_when_redis_is_unreachable_and_says_only_which_check_failed() -> None:
    with override_settings(CHANNEL_LAYERS=UNREACHABLE_REDIS):
        response = Client().get("/readyz")
    assert (response.status_code, response.json()) == (
        503,
        {"status": "unavailable", "checks": {"database": "ok", "channel_layer": "error"}},
    )
    assert b"127.0.0.1" not in response.content


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_get_and_head_are_answered_and_nothing_else(path: str) -> None:
    assert Client().head(path).status_code == 200  # some load balancers probe with HEAD
    assert Client().post(path).status_code == 405
