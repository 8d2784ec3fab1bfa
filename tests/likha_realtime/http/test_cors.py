"""CORS on the HTTP routes (django-cors-headers in the demo settings): preflights and answers for allowed origins,
nothing for others, and nothing on the host's other URLs (docs/CONFIGURATION.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client, override_settings

from erp_demo.management.commands import seed_demo
from likha_realtime.origins import cors_origins
from tests.likha_realtime.support import Roles
from tests.live.harness import ROOT
from tests.settings.test_env import without_realtime_variables

ALLOWED = "http://localhost:5173"  # the default: a host of ALLOWED_HOSTS (127.0.0.1, localhost, [::1]), any port
EVIL = "https://evil.example"
ROUTES = ["/auth/login", "/auth/refresh", "/auth/logout", "/items/products", "/items/products/1", "/server/info"]
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Credentials",
    "Access-Control-Max-Age",
)


def preflight(path: str, origin: str, method: str = "POST", headers: str = "authorization, content-type") -> Any:
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def cors_of(response: Any) -> dict[str, str]:
    return {name: response[name] for name in CORS_HEADERS if response.has_header(name)}


GRANTED = {
    "Access-Control-Allow-Origin": ALLOWED,
    "Access-Control-Allow-Headers": "authorization, content-type",
    "Access-Control-Allow-Methods": "DELETE, GET, OPTIONS, PATCH, POST, PUT",
    "Access-Control-Max-Age": "86400",
}


def test_an_allowed_origin_passes_the_preflight_of_auth_login() -> None:
    response = preflight("/auth/login", ALLOWED)
    assert response.status_code == 200
    assert cors_of(response) == GRANTED  # no Allow-Credentials: tokens travel in Authorization, not cookies
    assert "origin" in response["Vary"].lower()


def test_a_disallowed_origin_gets_no_cors_headers_so_the_browser_blocks_the_request() -> None:
    for origin in (EVIL, "null", "http://localhost.evil.example:5173", "https://127.0.0.1.evil.example"):
        response = preflight("/auth/login", origin)
        assert cors_of(response) == {}, origin


@pytest.mark.parametrize("path", [*ROUTES, "/graphql"])
def test_every_route_of_the_project_answers_preflights(path: str) -> None:
    assert cors_of(preflight(path, ALLOWED, method="PATCH")) == GRANTED
    assert cors_of(preflight(path, EVIL, method="PATCH")) == {}


@pytest.mark.parametrize("path", ["/admin/", "/admin/login/", "/authors", "/items-report", "/server/infos", "/"])
def test_the_hosts_other_urls_get_no_cors_headers(path: str) -> None:
    response = preflight(path, ALLOWED)
    assert cors_of(response) == {}
    assert "origin" not in response.get("Vary", "").lower()
    assert cors_of(Client().get(path, HTTP_ORIGIN=ALLOWED)) == {}


@pytest.mark.django_db
def test_a_login_from_an_allowed_origin_can_be_read_by_the_page(roles: Roles) -> None:
    body = json.dumps({"email": seed_demo.ADMIN_EMAIL, "password": seed_demo.ADMIN_PASSWORD})
    allowed = Client().post("/auth/login", body, content_type="application/json", HTTP_ORIGIN=ALLOWED)
    assert allowed.status_code == 200
    assert cors_of(allowed) == {"Access-Control-Allow-Origin": ALLOWED}
    refused = Client().post("/auth/login", body, content_type="application/json", HTTP_ORIGIN=EVIL)
    assert refused.status_code == 200  # CORS is enforced by the browser: it gives the page nothing to read
    assert cors_of(refused) == {}


@pytest.mark.django_db
def test_an_error_answer_carries_the_cors_headers_too() -> None:
    # A page must be able to read "Invalid user credentials." rather than a CORS failure.
    body = json.dumps({"email": "nobody@example.com", "password": "wrong"})
    response = Client().post("/auth/login", body, content_type="application/json", HTTP_ORIGIN=ALLOWED)
    assert response.status_code == 401
    assert cors_of(response) == {"Access-Control-Allow-Origin": ALLOWED}


def test_a_configured_list_replaces_the_allowed_hosts() -> None:
    lists = cors_origins(["https://app.example.com"], None, ["127.0.0.1", "localhost"])
    with override_settings(
        CORS_ALLOW_ALL_ORIGINS=lists.allow_all,
        CORS_ALLOWED_ORIGINS=lists.origins,
        CORS_ALLOWED_ORIGIN_REGEXES=lists.regexes,
    ):
        assert cors_of(preflight("/auth/login", "https://app.example.com"))["Access-Control-Allow-Origin"] == (
            "https://app.example.com"
        )
        assert cors_of(preflight("/auth/login", ALLOWED)) == {}
        assert cors_of(preflight("/auth/login", "http://app.example.com")) == {}


# -- the demo settings read the environment ----------------------------------------------------------------------

SHOW = (
    "from django.conf import settings as s; import json; "
    "print(json.dumps([s.CORS_ALLOW_ALL_ORIGINS, s.CORS_ALLOWED_ORIGINS, s.CORS_ALLOWED_ORIGIN_REGEXES, "
    "s.CORS_URLS_REGEX]))"
)


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = without_realtime_variables(env)
    for name in ("CORS_ALLOWED_ORIGINS", "ALLOWED_HOSTS", "DEBUG"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings_with(**env: str) -> list[Any]:
    result = run_manage("shell", "-c", SHOW, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_by_default_cors_allows_the_allowed_hosts_any_port() -> None:
    assert settings_with(ALLOWED_HOSTS="erp.example.com,.example.org") == [
        False,
        [],
        [r"^https?://erp\.example\.com(?::[0-9]+)?$", r"^https?://(?:[a-z0-9.-]+\.)?example\.org(?::[0-9]+)?$"],
        r"^/(?:auth/(?:login|refresh|logout)$|items(?:/|$)|server/info$|graphql$)",
    ]


def test_cors_follows_the_sockets_list_unless_it_has_its_own() -> None:
    sockets = {"WEBSOCKETS_ALLOWED_ORIGINS": "https://App.example.com,http://localhost:5173"}
    assert settings_with(**sockets)[:3] == [False, ["https://app.example.com", "http://localhost:5173"], []]
    assert settings_with(**sockets, CORS_ALLOWED_ORIGINS="https://other.example:443")[:3] == [
        False,
        ["https://other.example"],
        [],
    ]
    assert settings_with(WEBSOCKETS_ALLOWED_ORIGINS="*")[:3] == [True, [], []]
    assert settings_with(CORS_ALLOWED_ORIGINS="*", WEBSOCKETS_ALLOWED_ORIGINS="https://a.example")[:3] == [
        True,
        [],
        [],
    ]


def test_the_cors_urls_follow_the_graphql_path() -> None:
    assert settings_with(WEBSOCKETS_GRAPHQL_PATH="/api/graphql")[3] == (
        r"^/(?:auth/(?:login|refresh|logout)$|items(?:/|$)|server/info$|api/graphql$)"
    )


def test_an_invalid_cors_origin_stops_start_up_with_one_line() -> None:
    result = run_manage("check", env={"CORS_ALLOWED_ORIGINS": "https://app.example.com/,localhost:5173"})
    assert result.returncode == 2
    assert result.stderr == (
        "configuration error: CORS_ALLOWED_ORIGINS='https://app.example.com/,localhost:5173' is invalid; allowed: "
        "comma-separated origins such as https://erp.example.com,http://localhost:5173 (scheme://host[:port], http "
        "or https, no path), or * (any origin: unsafe).\n"
    )
