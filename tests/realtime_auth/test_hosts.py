"""realtime_auth with the host's user model: Django's ``auth.User``, an ``AbstractUser``, a bare ``AbstractBaseUser``
(no ``PermissionsMixin``) with a login name or with ``USERNAME_FIELD = "email"``, and a host authentication backend.

``AUTH_USER_MODEL`` cannot change inside one process, so each host (``hosts/settings_*.py``) runs
``hosts/probe.py`` in a process of its own on a new SQLite file: system checks, migrate, users, HTTP and socket
logins, revocation by the host model's signals. The five processes start together (module fixture) and each test
asserts one host's report exactly. The demo's own model (``AbstractBaseUser`` + ``PermissionsMixin``,
``USERNAME_FIELD = "email"``) is the main suite's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("auth_user", "abstract_user", "base_user", "email_user", "backend")


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen[str]]]:
    folder = tmp_path_factory.mktemp("hosts")
    environ = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    running = {
        host: subprocess.Popen(
            [sys.executable, "-m", "tests.realtime_auth.hosts.probe"],
            cwd=ROOT,
            env={
                **environ,
                "DJANGO_SETTINGS_MODULE": f"tests.realtime_auth.hosts.settings_{host}",
                "HOST_DB": str(folder / f"{host}.sqlite3"),
                "PYTHONPATH": str(ROOT),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in HOSTS
    }
    yield running
    for process in running.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def report_of(probes: dict[str, subprocess.Popen[str]], host: str) -> dict[str, Any]:
    stdout, stderr = probes[host].communicate(timeout=120)
    assert probes[host].returncode == 0, stderr
    report: dict[str, Any] = json.loads(stdout)
    return report


def tokens(user: str) -> list[Any]:
    """PROTOCOL §9's login reply, its tokens those of ``user`` (simplejwt's default 5-minute access lifetime)."""
    data = {"access_token": f"<access:{user}>", "refresh_token": f"<refresh:{user}>", "expires": 300000}
    return [200, {"data": data}]


def refused(code: str = "INVALID_CREDENTIALS", message: str = "Invalid user credentials.") -> list[Any]:
    return [401, {"errors": [{"message": message, "extensions": {"code": code}}]}]


def invalid(message: str) -> list[Any]:
    return [400, {"errors": [{"message": message, "extensions": {"code": "INVALID_PAYLOAD"}}]}]


def expected_http(name: str, *, master_key: bool) -> dict[str, Any]:
    return {
        "email": tokens("ann"),  # "ann@example.com" finds ann's "Ann@Example.COM", then her username logs in
        "username": tokens("ann"),
        "email_wrong_password": refused(),
        "username_wrong_password": refused(),
        "unknown_email": refused(),
        "both": invalid(f"Give one of email or {name}, not both."),
        "neither": invalid("email: This field is required."),
        "username_too_long": invalid(f"{name}: Ensure this field has no more than 4096 characters."),
        "username_with_nul": invalid(f"{name}: Null characters are not allowed."),
        "username_not_a_string": invalid(f"{name}: Not a valid string."),
        "email_that_is_a_username": tokens("dave@example.com"),  # no user has that email: tried as a username
        "shared_email": refused(),  # two users have it: neither logs in by email...
        "shared_email_username": tokens("bob"),  # ...but by username
        "master_key_email": tokens("ann") if master_key else refused(),
        "master_key_username": tokens("ann") if master_key else refused(),
        "inactive": refused(),
        "inactive_master_key": refused(),
    }


EXPECTED_SOCKET = {
    "access_token": {"type": "auth", "status": "ok"},
    "username": {"type": "auth", "status": "ok", "refresh_token": "<refresh:ann>", "uid": 1},
    "email": {"type": "auth", "status": "ok", "refresh_token": "<refresh:ann>", "uid": "e"},
    "wrong_password": {
        "type": "auth",
        "status": "error",
        "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
        "uid": 2,
    },
    "both": {
        "type": "auth",
        "status": "error",
        "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
        "uid": 3,
    },
}
TOKEN_EXPIRED = {"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."}}


@pytest.mark.parametrize(
    ("host", "model", "name"),
    [
        ("auth_user", "auth.User", "username"),
        ("abstract_user", "members.Member", "username"),
        ("base_user", "accounts.Account", "login"),
    ],
)
def test_a_host_user_model_passes_checks_migrates_and_logs_in_by_email_or_username(
    probes: dict[str, subprocess.Popen[str]], host: str, model: str, name: str
) -> None:
    report = report_of(probes, host)

    assert report["model"] == model
    assert report["check_errors"] == []  # no fields.E304 clash with a user model of realtime_auth's
    assert report["missing_migrations"] == ""  # realtime_auth's and likha_realtime's migrations match their models
    assert report["login_fields"] == ["email", name]
    assert report["http"] == expected_http(name, master_key=False)
    assert report["socket"] == EXPECTED_SOCKET
    assert report["socket_after_password_change"] == TOKEN_EXPIRED  # the host model's saves are watched
    assert report["http_backend_calls"] == report["socket_backend_calls"] == []
    # The login throttle counts a user's email and username as one account (any case), an unknown email apart.
    assert report["throttle_accounts"] == [
        ["email=ANN@example.com", f"{name}=ann", f"{name}=Ann"],
        ["email=nobody@example.com"],
    ]


def test_a_host_model_that_logs_in_by_email_without_permissions_mixin(probes: dict[str, subprocess.Popen[str]]) -> None:
    """``AbstractBaseUser`` with ``USERNAME_FIELD = "email"`` and no ``PermissionsMixin``: ``email`` is the one login
    key, handed to ``authenticate()`` as given (Django's backend matches it as stored)."""
    report = report_of(probes, "email_user")

    assert report["model"] == "emails.EmailAccount"
    assert (report["check_errors"], report["missing_migrations"]) == ([], "")
    assert report["login_fields"] == ["email"]
    assert report["http"] == {
        "email": tokens("ann@example.com"),
        "email_other_case": refused(),
        "email_wrong_password": refused(),
        "unknown_email": refused(),
        "username": invalid("email: This field is required."),
        "neither": invalid("email: This field is required."),
        "email_too_long": invalid("email: Ensure this field has no more than 254 characters."),
        "email_with_nul": invalid("email: Null characters are not allowed."),
        "email_not_a_string": invalid("email: Not a valid string."),
        "inactive": refused(),
    }
    handshake_failed = {"code": "AUTH_FAILED", "message": "Authentication handshake failed."}
    assert report["socket"] == {
        "access_token": {"type": "auth", "status": "ok"},
        "email": {"type": "auth", "status": "ok", "refresh_token": "<refresh:ann@example.com>", "uid": "e"},
        "wrong_password": {"type": "auth", "status": "error", "error": handshake_failed, "uid": 2},
        "username": {"type": "auth", "status": "error", "error": handshake_failed, "uid": 3},
    }
    assert report["socket_after_password_change"] == TOKEN_EXPIRED
    assert report["http_backend_calls"] == report["socket_backend_calls"] == []
    # One account whatever the case (the throttle counts what authenticate() gets, case-folded).
    assert report["throttle_accounts"] == [
        ["email=ANN@example.com", "email=ann@example.com"],
        ["email=nobody@example.com"],
    ]


def test_the_hosts_authentication_backends_decide_with_the_http_request_or_none_on_sockets(
    probes: dict[str, subprocess.Popen[str]],
) -> None:
    report = report_of(probes, "backend")

    assert (report["model"], report["check_errors"], report["missing_migrations"]) == ("auth.User", [], "")
    assert report["http"] == expected_http("username", master_key=True)
    # The username each login handed to authenticate(): an email becomes the username of the one user who has
    # it, or stays itself (unknown, shared); requests the backend got: Django's HTTP request, None on the socket.
    http = "WSGIRequest"
    assert report["http_backend_calls"] == [
        ["ann", http],  # email
        ["ann", http],  # username
        ["ann", http],  # email, wrong password
        ["ann", http],  # username, wrong password
        ["nobody@example.com", http],
        ["dave@example.com", http],
        ["bob@example.com", http],  # shared email
        ["bob", http],
        ["ann", http],  # master key by email
        ["ann", http],  # master key by username
    ]
    assert report["socket"] == EXPECTED_SOCKET
    assert report["socket_backend_calls"] == [["ann", "NoneType"], ["ann", "NoneType"], ["ann", "NoneType"]]
    assert report["socket_after_password_change"] == TOKEN_EXPIRED
