"""``GET /metrics``: Prometheus text for an active superuser's token, a scraper token or an allowed address; nobody
else (403, or 401 for a token that is not valid); off with ``METRICS_ENABLED``. Token settings are never echoed."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import Client

from likha_realtime.conf import from_environ
from realtime_auth.conf import EnvError
from tests.likha_realtime.support import Roles, realtime

pytestmark = pytest.mark.django_db

SCRAPER = "scrape-token-0123456789abcdef"
FORBIDDEN = {"errors": [{"message": "You don't have permission to access this.", "extensions": {"code": "FORBIDDEN"}}]}


def get(token: str | None = None, address: str = "127.0.0.1") -> object:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client(REMOTE_ADDR=address).get("/metrics", **headers)


def test_an_admin_token_reads_the_metrics_as_prometheus_text(roles: Roles) -> None:
    response = get(roles.admin)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE likha_realtime_connections gauge" in response.content
    assert "no-cache" in response["Cache-Control"]


def test_the_bearer_scheme_is_read_as_simplejwt_reads_it(roles: Roles) -> None:
    for header in (f"bearer {roles.admin}", f"Bearer\t{roles.admin}", f"  Bearer   {roles.admin} "):
        assert Client().get("/metrics", HTTP_AUTHORIZATION=header).status_code == 200, repr(header)
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {roles.admin} extra").status_code == 403


@pytest.mark.parametrize("who", ["nobody", "editor"])
def test_no_token_or_a_non_admin_token_is_forbidden(roles: Roles, who: str) -> None:
    response = get(None if who == "nobody" else roles.editor)
    assert (response.status_code, response.json()) == (403, FORBIDDEN)


def test_a_token_that_is_neither_a_scraper_token_nor_valid_is_401(roles: Roles) -> None:
    response = get("not-a-jwt")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_a_configured_scraper_token_reads_the_metrics(roles: Roles) -> None:
    with realtime(METRICS_TOKENS=[SCRAPER]):
        assert get(SCRAPER).status_code == 200
        assert get(SCRAPER[:-1]).status_code == 401  # a prefix is not the token


@pytest.mark.parametrize(
    ("networks", "address", "status"),
    [
        (["127.0.0.1"], "127.0.0.1", 200),
        (["10.0.0.0/8"], "10.1.2.3", 200),
        (["10.0.0.0/8"], "127.0.0.1", 403),
        (["::1"], "::1", 200),
        (["127.0.0.0/8"], "::ffff:127.0.0.1", 200),
        ([], "127.0.0.1", 403),
    ],
)
def test_allowed_addresses_read_without_a_token(roles: Roles, networks: list[str], address: str, status: int) -> None:
    with realtime(METRICS_ALLOWED_ADDRESSES=networks):
        assert get(address=address).status_code == status


def test_switched_off_it_is_not_found(roles: Roles) -> None:
    with realtime(METRICS_ENABLED=False):
        assert get(roles.admin).status_code == 404


def test_a_post_is_refused(roles: Roles) -> None:
    assert Client().post("/metrics").status_code == 405


def test_the_environment_sets_both_lists_and_an_invalid_token_list_is_never_shown() -> None:
    values = from_environ({"METRICS_TOKENS": f"{SCRAPER}, {SCRAPER}2", "METRICS_ALLOWED_ADDRESSES": "10.0.0.0/8,::1"})
    assert values["METRICS_TOKENS"] == [SCRAPER, f"{SCRAPER}2"]
    assert values["METRICS_ALLOWED_ADDRESSES"] == ["10.0.0.0/8", "::1"]
    with pytest.raises(EnvError) as raised:
        from_environ({"METRICS_TOKENS": "short-secret"})
    assert "short-secret" not in str(raised.value)
    assert "METRICS_TOKENS='[REDACTED]'" in str(raised.value)
    with pytest.raises(EnvError) as raised:
        from_environ({"METRICS_ALLOWED_ADDRESSES": "10.0.0.0/33"})
    assert "METRICS_ALLOWED_ADDRESSES='10.0.0.0/33' is invalid" in str(raised.value)


def test_a_system_check_refuses_a_short_token_without_showing_it() -> None:
    with realtime(METRICS_TOKENS=["short-secret"]):
        messages = [str(message.msg) for message in run_checks() if "METRICS_TOKENS" in str(message.msg)]
    assert messages == [
        "LIKHA_REALTIME['METRICS_TOKENS'] = [REDACTED] is invalid; allowed: a list of strings of at least 16 "
        "characters each."
    ]
